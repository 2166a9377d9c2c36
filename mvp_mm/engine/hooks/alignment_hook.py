"""Student-teacher alignment on held-out images, logged during pre-training."""
import random
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Union

import numpy as np
import torch
from mmengine.hooks import Hook
from torch.utils.data import DataLoader

from mmpretrain.registry import HOOKS


@contextmanager
def _fixed_rngs(seed: int) -> Iterator[None]:
    """Seed ``random``, numpy and torch's CPU generator inside, restore them
    after: the held-out masks are the same at every evaluation and training
    draws the same random numbers as without the hook (evaluation draws
    nothing on the GPU: the model is in eval mode)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


@HOOKS.register_module()
class MVPAlignmentHook(Hook):
    """Log the student-teacher cosine on a small held-out set while training.

    The quantity `MVP <https://arxiv.org/abs/2203.05175>`_ maximises (Eq. 9),
    measured on images the student does not train on, separately for the
    CLS token, the masked patches and the visible patches: the cheapest
    health check of a pre-training run (a collapsing or diverging run shows
    here long before a fine-tuning result). Every ``interval`` iterations
    and at the last one, it runs ``MVP.predict`` (:meth:`MVP.alignment`) on
    ``dataloader`` and reduces with :class:`MVPAlignmentMetric` (across
    ranks), then logs ``alignment/cls``, ``alignment/masked`` and
    ``alignment/visible`` to the log and the visualizer backends, and puts
    them in the message hub (``runner.message_hub.get_scalar(
    'alignment/cls')``) for other hooks.

    The held-out pipeline adds a ``mask`` (``BlockwiseMaskGenerator``) as
    the training pipeline does (a config that masks nothing, like FD-CLIP's,
    gets ``cls`` and ``visible`` only); its random masks are drawn from RNGs
    seeded with ``seed`` and restored afterwards, so evaluations are
    comparable and training is unaffected.

    Example::

        custom_hooks = [dict(
            type='MVPAlignmentHook', interval=5000,
            dataloader=dict(
                batch_size=64, num_workers=4,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                dataset=dict(type='ImageNet', data_root='data/imagenet',
                             split='val', indices=2000,
                             pipeline=test_pipeline)))]

    Args:
        dataloader (dict | DataLoader): The held-out data (built with
            ``runner.build_dataloader`` when a dict).
        interval (int): Evaluate every this many training iterations.
            Defaults to 1000.
        seed (int): Seed of the held-out masks. Defaults to 0.
    """

    priority = 'LOW'  # after the optimizer step and the param schedulers

    def __init__(self,
                 dataloader: Union[dict, DataLoader],
                 interval: int = 1000,
                 seed: int = 0) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}.')
        self.dataloader = dataloader
        self.interval = interval
        self.seed = seed
        self.evaluator = None

    def before_train(self, runner) -> None:
        """Build the held-out loader and the metric."""
        if isinstance(self.dataloader, dict):
            self.dataloader = runner.build_dataloader(
                self.dataloader, seed=self.seed)
        self.evaluator = runner.build_evaluator(
            dict(type='MVPAlignmentMetric'))
        self.evaluator.dataset_meta = getattr(self.dataloader.dataset,
                                              'metainfo', None)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Evaluate every ``interval`` iterations and at the last one."""
        if self.every_n_train_iters(runner, self.interval) or \
                self.is_last_train_iter(runner):
            scores = self.evaluate(runner.model)
            runner.visualizer.add_scalars(scores, step=runner.iter + 1)
            runner.message_hub.update_scalars(scores)
            text = '  '.join(f'{k}: {v:.4f}' for k, v in scores.items())
            runner.logger.info(
                f'Held-out alignment at iter {runner.iter + 1}: {text}')

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> Dict[str, float]:
        """Mean cosine over the held-out set (the model's mode is kept).

        Returns:
            Dict[str, float]: ``alignment/cls``, ``alignment/masked``,
            ``alignment/visible``.
        """
        was_training = model.training
        model.eval()
        try:
            with _fixed_rngs(self.seed):
                for data in self.dataloader:
                    self.evaluator.process(
                        data_samples=model.test_step(data), data_batch=data)
        finally:
            model.train(was_training)
        return self.evaluator.evaluate(len(self.dataloader.dataset))
