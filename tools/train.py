"""Train any mvp_mm config: MVP pre-training (mmpretrain), fine-tuning and
linear probing (mmpretrain), UperNet segmentation (mmseg).

Adapted from mmpretrain's ``tools/train.py``
(https://github.com/open-mmlab/mmpretrain/blob/v1.2.0/tools/train.py); the
config's ``default_scope`` picks the library, so one script serves all.

The arguments are parsed and checked before torch, mmengine and mvp_mm are
imported (inside the functions that use them), so ``--help`` and a wrong
argument answer at once (tools/argument_checks.py).
"""
from __future__ import annotations  # the annotations name lazy imports

import argparse
import os
import os.path as osp
from typing import TYPE_CHECKING

from argument_checks import (add_cfg_options, config_file, existing_file,
                             positive_int)

if TYPE_CHECKING:
    from mmengine.config import Config
    from mmengine.runner import Runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', type=config_file,
                        help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        type=existing_file(
            'checkpoint', 'pass a .pth file that tools/train.py '
            'wrote, or --resume alone for the latest one in the work dir',
            keep=('auto', )),
        help='resume from this checkpoint, or (no value) from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--no-validate', action='store_true', help='skip validation')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr linearly with the actual total batch size')
    parser.add_argument(
        '--accumulate',
        type=positive_int,
        metavar='N',
        help='gradient accumulation: one optimizer step every N batches '
        '(optim_wrapper.accumulative_counts=N), for an effective batch of '
        'GPUs x batch x N; --auto-scale-lr scales the lr to it')
    parser.add_argument(
        '--pretrained',
        type=existing_file(
            'checkpoint', 'pass the .pth file that an MVP '
            'pre-training run (tools/train.py configs/pretrain/...) wrote '
            'under its work dir'),
        help='downstream configs: the MVP pre-training checkpoint the '
        'backbone starts from (= --cfg-options '
        'model.backbone.init_cfg.checkpoint=PATH)')
    add_cfg_options(parser)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args) -> Config:
    """Merge command-line arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if args.accumulate is not None:
        cfg.optim_wrapper.accumulative_counts = args.accumulate
    if args.pretrained is not None:
        init_cfg = cfg.model.get('backbone', {}).get('init_cfg')
        if not (isinstance(init_cfg, dict)
                and init_cfg.get('type') == 'Pretrained'):
            raise ValueError(
                f'--pretrained: {args.config} has no backbone '
                "init_cfg=dict(type='Pretrained') to set; it is for the "
                'fine-tuning, linear probing and segmentation configs.')
        init_cfg.checkpoint = args.pretrained
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def amp_fallback_on_cpu(cfg: Config) -> None:
    """AmpOptimWrapper asserts a GPU; on a CPU-only machine train in fp32.
    Fused AdamW (``optimizer.fused=True``) runs on CPU from torch 2.4 on;
    with an older torch and no GPU, the default AdamW is used instead."""
    import torch
    from mmengine.logging import print_log
    from mmengine.utils import digit_version

    wrapper = cfg.get('optim_wrapper', {})
    optimizer = wrapper.get('optimizer', {})
    if optimizer.get('fused') and not torch.cuda.is_available() and \
            digit_version(torch.__version__) < digit_version('2.4.0'):
        print_log(
            f'No GPU and torch {torch.__version__} has no CPU fused AdamW: '
            'optimizer.fused=True -> the default AdamW.',
            logger='current', level=30)
        optimizer.pop('fused')
    if wrapper.get('type') == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        print_log(
            'No GPU: AmpOptimWrapper -> OptimWrapper (fp32 on CPU).',
            logger='current', level=30)
        wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(key, None)


def plain_param_groups(runner: Runner) -> None:
    """Build the optimizer now, with plain-dict parameter groups.

    mmengine's optimizer constructor hands ``paramwise_cfg`` groups to the
    optimizer as ``ConfigDict`` objects, and with ``compile=True`` (mmengine
    compiles ``train_step``, the optimizer step included) TorchDynamo fails
    on them (``'UserDefinedDictVariable' object has no attribute 'items'``,
    torch 2.14). The groups keep their keys and values; ``runner.train()``
    takes the built wrapper as it is.
    """
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    wrappers = getattr(runner.optim_wrapper, 'values',
                       lambda: [runner.optim_wrapper])()
    for wrapper in wrappers:
        optimizer = wrapper.optimizer
        optimizer.param_groups = [dict(g) for g in optimizer.param_groups]


#: Set by the launcher in a restarted run: torchrun's worker group
#: restarted after a lost worker (``--max-restarts``), a requeued Slurm job.
RESTART_COUNTS = ('TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT')


def resume_after_restart(cfg: Config) -> None:
    """A restarted run continues from the newest complete checkpoint of
    its work dir, as with ``--resume``: a torchrun worker group restarted
    after a lost worker, a Slurm job requeued (by ``SaveOnSignalHook``, a
    pre-emption or a node failure). Only where the work dir holds no
    checkpoint yet does the given ``--resume PATH`` / ``load_from`` apply."""
    restarts = [f'{name}={os.environ[name]}' for name in RESTART_COUNTS
                if os.environ.get(name, '0').strip() not in ('', '0')]
    if not restarts:
        return
    from mmengine.logging import print_log

    from mvp_mm.engine import resolve_resume
    given = cfg.get('resume', False), cfg.get('load_from')
    cfg.resume, cfg.load_from = True, None
    resolve_resume(cfg)
    if cfg.load_from is None and given[1] is not None:
        cfg.resume, cfg.load_from = given
    print_log(
        f'{", ".join(restarts)}: a restarted run, so it resumes as with '
        f'`--resume`: from {cfg.load_from or "scratch (no checkpoint yet)"}.',
        logger='current')


def load_config(args) -> Config:
    """The config with the arguments merged, adapted to the machine, and
    checked, its work dir locked for this run (tools/demo.py shares
    this)."""
    from mmengine.config import Config

    import mvp_mm  # noqa: F401  (compatibility layers + registration)
    from mvp_mm.datasets import check_dataloader_data
    from mvp_mm.engine import launch_rank, lock_work_dir, resolve_resume
    cfg = merge_args(Config.fromfile(args.config), args)
    # One run per work dir: a second one stops here, before it reads the
    # resume checkpoint or writes anything (held until exit; rank 0).
    lock = lock_work_dir(cfg.work_dir, launch_rank(cfg.launcher),
                         cfg.get('work_dir_lock_wait'))
    try:
        amp_fallback_on_cpu(cfg)
        resume_after_restart(cfg)
        # Clear errors before anything is built: a resume checkpoint that is
        # missing or truncated, train (and val) data that is missing or not
        # laid out as the dataset type reads it.
        resolve_resume(cfg)
        validates = all(cfg.get(key) is not None for key in (
            'val_dataloader', 'val_cfg', 'val_evaluator'))
        check_dataloader_data(cfg, ('train', 'val') if validates else
                              ('train', ))
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return cfg


def main():
    args = parse_args()  # before the imports: --help and errors at once
    from mmengine.registry import RUNNERS

    from mvp_mm.engine import EffectiveBatchRunner, StoppedBySignal
    cfg = load_config(args)
    # a config of ours names EffectiveBatchRunner; any other gets it too, so
    # --auto-scale-lr counts --accumulate's batches whatever the config
    runner = EffectiveBatchRunner.from_cfg(cfg) \
        if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if cfg.get('compile'):
        plain_param_groups(runner)
    try:
        runner.train()
    except StoppedBySignal:  # all ranks stop together, checkpoint saved
        leave_process_group()
        raise
    leave_process_group()


def leave_process_group() -> None:
    """Ranks leave together, so none exits while another still talks to it
    (mmengine never tears the process group down)."""
    import torch
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == '__main__':
    main()
