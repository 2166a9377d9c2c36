"""k-NN accuracy of the student's features, logged during pre-training."""
import time
from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, all_reduce, get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader

from mmpretrain.registry import HOOKS
from ...evaluation import weighted_knn_correct

#: The student features, by the name their scores are logged under.
FEATURE_KINDS = ('cls', 'patch_mean')


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Log DINO's weighted k-NN accuracy of the student while pre-training.

    `MVP <https://arxiv.org/abs/2203.05175>`_ reports a 75.4% linear probe:
    its features are meant to be linearly useful, which the held-out
    student-teacher cosine (:class:`MVPAlignmentHook`) does not say. Every
    ``interval`` epochs (or iterations, ``by_epoch=False``) and at the end
    of training, the student backbone, in eval mode and without a mask,
    embeds a labelled ``memory`` set and a ``query`` set; the CLS token and
    the mean of the patch tokens, each L2-normalised, are classified by
    DINO's weighted k-NN (:func:`~mvp_mm.evaluation.weighted_knn_correct`:
    k=20, T=0.07, cosine; ``knn_classifier`` of
    https://github.com/facebookresearch/dino/blob/main/eval_knn.py).
    ``knn/cls_top1``, ``knn/cls_top5``, ``knn/patch_mean_top1`` and
    ``knn/patch_mean_top5`` (percent) go to the log, the visualizer backends
    (``scalars.json``) and the message hub, beside ``alignment/*``.

    Distributed: each rank embeds its shard of each set (a sampler that
    neither shuffles nor pads: every image embedded once), the features,
    labels and dataset indices are gathered on every rank and put in
    dataset order, each rank scores every ``world_size``-th query and the
    counts are summed: the same accuracies as one process. A loader whose
    sampler pads (``round_up=True``) embeds some images twice; the copies
    are dropped. Nothing random is drawn (training's RNG streams are
    untouched) and the model's mode is restored.

    Off unless configured (it needs labelled images); one entry turns it
    on, e.g. ImageNet's val split as queries against a train subset::

        custom_hooks = _base_.custom_hooks + [dict(
            type='KNNMonitorHook',
            memory=dict(data_root='data/imagenet', data_prefix='train',
                        ann_file='meta/train_knn.txt'),
            query=dict(data_root='data/imagenet', data_prefix='val',
                       ann_file='meta/val.txt'))]

    Args:
        memory (dict | DataLoader): The labelled memory set: keyword
            arguments of an mmpretrain ``CustomDataset`` (an ImageNet-style
            class-folder tree, or ``ann_file`` lines ``path label``), given
            the test pipeline (short side resized to 256/224 of the input
            size, bicubic, center crop; no mask) unless they carry a
            ``pipeline``; or a complete dataloader config (with a
            ``dataset``), or a built ``DataLoader``.
        query (dict | DataLoader): The labelled query set, as ``memory``.
        interval (int): Evaluate every this many epochs (iterations if
            ``by_epoch=False``). Defaults to 1.
        by_epoch (bool): Count ``interval`` in epochs. Defaults to True.
        k (int): Neighbours. Defaults to 20 (DINO).
        temperature (float): Of the vote weights. Defaults to 0.07 (DINO).
        batch_size (int): Images per embedding batch and rank, for the
            keyword-argument form of ``memory`` / ``query``. Defaults to 64.
        num_workers (int): Loader workers, likewise. Defaults to 2.
    """

    priority = 'LOW'  # after the optimizer step and the param schedulers

    def __init__(self,
                 memory: Union[dict, DataLoader],
                 query: Union[dict, DataLoader],
                 interval: int = 1,
                 by_epoch: bool = True,
                 k: int = 20,
                 temperature: float = 0.07,
                 batch_size: int = 64,
                 num_workers: int = 2) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}.')
        for name, data in (('memory', memory), ('query', query)):
            if not isinstance(data, (dict, DataLoader)):
                raise TypeError(
                    f'KNNMonitorHook {name} must be a dict (CustomDataset '
                    'arguments such as data_root, data_prefix, ann_file; or '
                    f'a dataloader config) or a DataLoader, got {data!r}.')
        self.loaders = dict(memory=memory, query=query)
        self.interval = interval
        self.by_epoch = by_epoch
        self.k = k
        self.temperature = temperature
        self.batch_size = batch_size
        self.num_workers = num_workers

    def _dataloader_cfg(self, data: dict, img_size: int) -> dict:
        """A complete dataloader config from CustomDataset arguments."""
        if 'dataset' in data:
            return data
        pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='ResizeEdge', scale=round(img_size * 256 / 224),
                 edge='short', backend='pillow', interpolation='bicubic'),
            dict(type='CenterCrop', crop_size=img_size),
            dict(type='PackInputs')
        ]
        return dict(
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False,
                         round_up=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(dict(type='CustomDataset', pipeline=pipeline),
                         **data))

    def before_train(self, runner) -> None:
        """Build the memory and query loaders."""
        model = _unwrap(runner.model)
        img_size = getattr(model.backbone, 'img_size', (224, 224))[0]
        _, world_size = get_dist_info()
        for name, data in self.loaders.items():
            if isinstance(data, dict):
                # A fixed seed: no sampler seed drawn from training's RNGs.
                data = runner.build_dataloader(
                    self._dataloader_cfg(data, img_size), seed=0)
                self.loaders[name] = data
            if len(data.dataset) < world_size:
                raise ValueError(
                    f'The k-NN {name} set has {len(data.dataset)} images, '
                    f'fewer than the {world_size} ranks that share it.')

    def after_train_epoch(self, runner) -> None:
        """Evaluate every ``interval`` epochs and after the last one."""
        if self.by_epoch and (self.every_n_epochs(runner, self.interval)
                              or self.is_last_train_epoch(runner)):
            self._log(runner, f'epoch {runner.epoch + 1}', runner.iter)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """With ``by_epoch=False``: every ``interval`` iterations and at the
        last one."""
        if not self.by_epoch and (
                self.every_n_train_iters(runner, self.interval)
                or self.is_last_train_iter(runner)):
            self._log(runner, f'iter {runner.iter + 1}', runner.iter + 1)

    def _log(self, runner, when: str, step: int) -> None:
        start = time.perf_counter()
        scores = self.evaluate(runner.model)
        runner.visualizer.add_scalars(scores, step=step)
        runner.message_hub.update_scalars(scores)
        text = '  '.join(f'{key}: {value:.2f}'
                         for key, value in scores.items())
        sizes = {name: len(loader.dataset)
                 for name, loader in self.loaders.items()}
        runner.logger.info(
            f'k-NN accuracy (%) at {when} (k={self.k}, T={self.temperature}'
            f', {sizes["memory"]} memory / {sizes["query"]} query images, '
            f'{time.perf_counter() - start:.1f} s): {text}')

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> Dict[str, float]:
        """Embed both sets, classify the queries (the model's mode is kept).

        Args:
            model (torch.nn.Module): An ``MVP`` model (or its DDP wrapper).

        Returns:
            Dict[str, float]: ``knn/<kind>_top1`` and ``knn/<kind>_top5``
            for ``kind`` in ``cls``, ``patch_mean``, percent.
        """
        model = _unwrap(model)
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[]):
                memory = self._embed(model, self.loaders['memory'])
                query = self._embed(model, self.loaders['query'])
        finally:
            model.train(was_training)
        num_classes = int(torch.cat((memory['label'], query['label'])).max()
                          ) + 1
        rank, world_size = get_dist_info()
        mine = slice(rank, None, world_size)  # this rank's queries
        counts = torch.stack([
            weighted_knn_correct(
                memory[kind], memory['label'], query[kind][mine],
                query['label'][mine], self.k, self.temperature, num_classes)
            for kind in FEATURE_KINDS
        ])  # [kinds, (top1, top5)]
        all_reduce(counts, op='sum')
        total = query['label'].numel()
        return {
            f'knn/{kind}_top{n}': 100.0 * int(count) / total
            for kind, row in zip(FEATURE_KINDS, counts)
            for n, count in zip((1, 5), row)
        }

    def _embed(self, model: torch.nn.Module,
               loader: DataLoader) -> Dict[str, torch.Tensor]:
        """Features and labels of every image of ``loader``'s dataset, in
        dataset order, gathered from every rank."""
        local = {name: [] for name in (*FEATURE_KINDS, 'label', 'index')}
        for data in loader:
            data = model.data_preprocessor(data, False)
            inputs = data['inputs']
            imgs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
            tokens = model.extract_feat(imgs)[0]  # [B, 1 + M, C]
            if tokens.dim() != 3:
                raise ValueError(
                    'KNNMonitorHook needs the student backbone to return its '
                    f'tokens [B, 1 + M, C], got {tuple(tokens.shape)}: set '
                    "model.backbone.out_type='raw' (the MVP configs do).")
            local['cls'].append(F.normalize(tokens[:, 0].float(), dim=-1))
            local['patch_mean'].append(
                F.normalize(tokens[:, 1:].mean(1).float(), dim=-1))
            local['label'].append(_labels(data['data_samples'], tokens))
            local['index'].append(torch.tensor(
                [sample.sample_idx for sample in data['data_samples']],
                device=tokens.device))
        return _gather_in_dataset_order(
            {name: torch.cat(parts) if parts else None
             for name, parts in local.items()}, len(loader.dataset))


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


def _labels(data_samples, tokens: torch.Tensor) -> torch.Tensor:
    if any('gt_label' not in sample for sample in data_samples):
        raise ValueError(
            'KNNMonitorHook needs labelled images: a memory or query image '
            'has no gt_label. Use an ImageNet-style class-folder tree or an '
            'ann_file with "path label" lines, and keep with_label=True.')
    return torch.cat([sample.gt_label for sample in data_samples]).to(
        tokens.device)


def _gather_in_dataset_order(local: Dict[str, Optional[torch.Tensor]],
                             size: int) -> Dict[str, torch.Tensor]:
    """Concatenate every rank's rows and order them by dataset index.

    ``local`` holds ``cls`` / ``patch_mean`` ``[n, C]``, ``label`` and
    ``index`` ``[n]`` (``None`` where this rank saw no image); ``size`` is
    the dataset length. Rows are padded to the longest rank's count for
    ``all_gather`` and cut back; an index seen twice keeps one row.
    """
    _, world_size = get_dist_info()
    if local['index'] is None:
        raise ValueError(
            "A rank embedded no image: its share of the loader's sampler is "
            "empty. Use sampler=dict(type='DefaultSampler', shuffle=False, "
            'round_up=False).')
    count = torch.tensor([local['index'].numel()],
                         device=local['index'].device)
    counts = [int(c) for c in all_gather(count)]
    gathered = {}
    for name, rows in local.items():
        padded = rows.new_zeros((max(counts), *rows.shape[1:]))
        padded[:rows.size(0)] = rows
        gathered[name] = torch.cat(
            [part[:n] for part, n in zip(all_gather(padded), counts)])
    index = gathered.pop('index')
    seen = torch.zeros(size, dtype=torch.bool, device=index.device)
    seen[index] = True
    if not seen.all():
        raise ValueError(
            f'{int((~seen).sum())} of {size} images were embedded by no '
            "rank: the loader's sampler leaves images out. Use "
            "sampler=dict(type='DefaultSampler', shuffle=False, "
            'round_up=False).')
    ordered = {}
    for name, rows in gathered.items():
        out = rows.new_zeros((size, *rows.shape[1:]))
        out[index] = rows  # a padded duplicate writes the same row again
        ordered[name] = out
    return ordered
