"""Evaluate a checkpoint of any mvp_mm config.

- pre-training configs: student-teacher cosine on held-out images
  (``MVPAlignmentMetric``);
- classification configs: top-1 / top-5;
- segmentation configs: mIoU.

Adapted from mmpretrain's ``tools/test.py``
(https://github.com/open-mmlab/mmpretrain/blob/v1.2.0/tools/test.py).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mvp_mm  # noqa: F401  (compatibility layers + registration)
from mvp_mm.datasets import check_dataloader_data


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save evaluation logs')
    parser.add_argument('--out', help='dump the metrics to this json file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. key=value key2.sub=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'Checkpoint {args.checkpoint!r} does not exist: pass the .pth '
            'file that tools/train.py wrote under its work dir.')
    cfg = Config.fromfile(args.config)
    if cfg.get('test_dataloader') is None:
        raise ValueError(f'{args.config} has no test_dataloader to '
                         'evaluate on.')
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    # A clear error for missing data before the model (and its teacher) is
    # built.
    check_dataloader_data(cfg, ('test', ))
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if args.out:
        from mmengine.fileio import dump
        dump(metrics, args.out)


if __name__ == '__main__':
    main()
