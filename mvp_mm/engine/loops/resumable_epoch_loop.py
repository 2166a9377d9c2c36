"""An epoch-based training loop that resumes exactly where a checkpoint taken
inside an epoch left off."""
import logging

from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import BatchSampler

from mmpretrain.registry import LOOPS

#: Message-hub runtime info (saved in every checkpoint, restored by
#: ``--resume``): ``dict(epoch=E, iter=I, batches=B)``, epoch ``E`` (0-based)
#: began after ``I`` iterations and has ``B`` batches.
EPOCH_START_KEY = 'train_epoch_start'


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` that continues a resumed epoch at
    its next batch.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_, whose 300-epoch runs
    are interrupted on shared clusters. mmengine's loop restarts the
    resumed epoch's data loader from its first batch: a run resumed from a
    checkpoint taken inside an epoch (``CheckpointHook(by_epoch=False)``, or
    any ``runner.save_checkpoint(..., by_epoch=False)`` in
    ``after_train_iter``) trains that epoch's first batches twice and runs
    more iterations than the uninterrupted run
    (https://github.com/open-mmlab/mmengine/blob/v0.10.7/mmengine/runner/loops.py).
    Here the resumed epoch starts at the batch after the checkpoint: the
    sampler (:class:`mvp_mm.datasets.ResumableSampler`, or
    :class:`~mvp_mm.datasets.SeededSampler`) skips the samples already
    trained without loading them, the batches keep their index in the epoch
    (``batch_idx``), and the epoch ends (its hooks, checkpoints and
    validation) after the same iteration as in the uninterrupted run. With
    the per-sample seeds of ``SeededSampler`` / ``ApplySampleSeed`` and
    :class:`~mvp_mm.engine.IterationSeedHook`, the resumed run trains on the
    same crops and masks and ends with the same weights.

    Where the epoch began is kept in the message hub (:data:`EPOCH_START_KEY`),
    which every checkpoint holds: a checkpoint of a later epoch's end
    (``epoch_N.pth``) resumes at the next epoch's start, one taken ``k``
    batches into an epoch resumes at batch ``k + 1``. A checkpoint written
    by mmengine's own loop (no such record) resumes at batch
    ``iter - epoch x len(dataloader) + 1``. Resuming inside an epoch needs
    the same number of batches an epoch (the same data, batch size and
    number of GPUs), and a sampler with ``set_start``: otherwise it is an
    error saying so.

    Args: as mmengine's ``EpochBasedTrainLoop``: ``runner``, ``dataloader``,
    ``max_epochs``, ``val_begin`` (default 1), ``val_interval`` (default 1)
    and ``dynamic_intervals`` (default None).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._resumed_batches = 0

    def run(self):
        """Launch training, first locating a resumed run in its epoch."""
        self._resumed_batches = self._batches_done_in_epoch()
        return super().run()

    def run_epoch(self) -> None:
        """Iterate the epoch, from the resumed batch on if it is the epoch
        a checkpoint was taken in."""
        done, self._resumed_batches = self._resumed_batches, 0
        self.runner.call_hook('before_train_epoch')
        self.runner.message_hub.update_info(
            EPOCH_START_KEY,
            dict(epoch=self._epoch, iter=self._iter - done,
                 batches=len(self.dataloader)))
        self.runner.model.train()
        if done < len(self.dataloader):
            if done:
                batches = self.dataloader.batch_sampler
                batches.sampler.set_start(done * batches.batch_size)
            for idx, data_batch in enumerate(self.dataloader, done):
                self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _batches_done_in_epoch(self) -> int:
        """How many batches of the current epoch the resumed checkpoint has
        trained (0 for a fresh run and at an epoch's start)."""
        batches = len(self.dataloader)
        start = self.runner.message_hub.get_info(EPOCH_START_KEY)
        if start is not None:
            if start['epoch'] != self._epoch:  # a finished epoch's record
                return 0
            done = self._iter - start['iter']
            if done and start['batches'] != batches:
                raise ValueError(
                    f'The checkpoint was taken {done} batches into epoch '
                    f'{self._epoch + 1}, of {start["batches"]} batches; this '
                    f'run has {batches} batches an epoch (another batch size, '
                    'number of GPUs or dataset), so that epoch cannot be '
                    'continued where it stopped. Resume with the settings of '
                    'the interrupted run, or from an epoch_N.pth checkpoint.')
        else:  # a checkpoint of mmengine's EpochBasedTrainLoop
            done = self._iter - self._epoch * batches
            if not 0 <= done <= batches:
                print_log(
                    f'Resumed iteration {self._iter} is not inside epoch '
                    f'{self._epoch + 1} of {batches} batches (another batch '
                    'size or number of GPUs?): the epoch restarts from its '
                    'first batch.', logger='current', level=logging.WARNING)
                return 0
        if 0 < done < batches:
            self._check_sampler_can_start_part_way()
            print_log(
                f'Resuming epoch {self._epoch + 1} at batch {done + 1} of '
                f'{batches}: the sampler skips the {done} batches already '
                'trained, without loading them.', logger='current')
        return done

    def _check_sampler_can_start_part_way(self) -> None:
        batches = self.dataloader.batch_sampler
        sampler = getattr(batches, 'sampler', None)
        if type(batches) is not BatchSampler or \
                not hasattr(sampler, 'set_start'):
            raise TypeError(
                'Resuming inside an epoch needs a sampler that can start '
                'part-way (train_dataloader.sampler='
                "dict(type='SeededSampler') or dict(type='ResumableSampler'), "
                "and no batch_sampler); this run's is "
                f'{type(sampler).__name__} in {type(batches).__name__}. '
                'Change the sampler (the order of samples stays the same), '
                'or resume from an epoch_N.pth checkpoint.')
