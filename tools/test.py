"""Evaluate a checkpoint of any mvp_mm config.

- pre-training configs: student-teacher cosine on held-out images
  (``MVPAlignmentMetric``);
- classification configs: top-1 / top-5;
- segmentation configs: mIoU.

The console shows the metrics, where the full log is, and any warning;
mmengine's log in the work dir keeps the rest (environment, config, hooks,
progress).

Adapted from mmpretrain's ``tools/test.py``
(https://github.com/open-mmlab/mmpretrain/blob/v1.2.0/tools/test.py).
The arguments are checked before the libraries are imported
(tools/argument_checks.py), so ``--help`` and a wrong argument answer at
once.
"""
import argparse
import os
import os.path as osp

from argument_checks import (add_cfg_options, config_file, existing_file,
                             output_file)


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config', type=config_file, help='config file path')
    parser.add_argument(
        'checkpoint',
        type=existing_file(
            'checkpoint', 'pass the .pth file that tools/train.py wrote '
            'under its work dir'),
        help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save evaluation logs')
    parser.add_argument('--out', type=output_file,
                        help='dump the metrics to this json file')
    add_cfg_options(parser)
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


def format_metrics(metrics: dict) -> list:
    """One line per metric: its name, its value (floats to 4 decimals)."""
    width = max(map(len, metrics), default=0)
    return [
        f'{name:<{width}}  ' +
        (f'{value:.4f}' if isinstance(value, float) else str(value))
        for name, value in metrics.items()
    ]


def main():
    args = parse_args()  # before the imports: --help and errors at once
    from mmengine.config import Config
    from mmengine.dist import is_main_process

    import mvp_mm  # noqa: F401  (compatibility layers + registration)
    from mvp_mm.datasets import check_dataloader_data
    from mvp_mm.engine import QuietConsoleRunner
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
    runner = QuietConsoleRunner.from_cfg(cfg)
    if is_main_process():
        print(f'Evaluating {args.checkpoint} ({args.config}); progress '
              f'in {runner.logger.log_file}', flush=True)
    metrics = runner.test()
    if args.out:
        from mmengine.fileio import dump
        dump(metrics, args.out)
    if is_main_process():
        print('\n'.join(format_metrics(metrics)))
        if args.out:
            print(f'Metrics written to {args.out}')
        print(f'Full log: {runner.logger.log_file}')


if __name__ == '__main__':
    main()
