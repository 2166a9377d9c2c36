"""The README's first command: MVP pre-training on an embedded default.

Writes a small ImageNet-format image set (generated deterministically, no
download) to ``data/mvp_demo``, pre-trains a tiny MVP student on it with
``tools/train.py`` and evaluates the checkpoint with ``tools/test.py``. A few
minutes on 2 CPU cores. The CLIP teacher uses real OpenAI weights when they can
be had and otherwise a randomly initialised CLIP, and says so in the log.
"""
import argparse
import os.path as osp
import subprocess
import sys

from mvp_mm.utils import make_imagenet_folder

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'pretrain', 'mvp_vit-tiny-p16_6e_demo.py')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/mvp_demo')
    parser.add_argument(
        '--cfg-options', nargs='+', default=[],
        help='passed on to tools/train.py, e.g. '
        'model.target_generator.pretrained=/path/to/clip.pt')
    args = parser.parse_args()

    data_root = 'data/mvp_demo'
    if not osp.isdir(osp.join(data_root, 'train')):
        make_imagenet_folder(data_root, num_classes=4, images_per_class=16,
                             image_size=256, split='train', seed=0)
        make_imagenet_folder(data_root, num_classes=4, images_per_class=4,
                             image_size=256, split='val', seed=1)
    options = ['--cfg-options', *args.cfg_options] if args.cfg_options \
        else []
    subprocess.run([
        sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIG,
        '--work-dir', args.work_dir, *options
    ], check=True)
    checkpoint = osp.join(args.work_dir, 'epoch_6.pth')
    subprocess.run([
        sys.executable, osp.join(REPO, 'tools', 'test.py'), CONFIG,
        checkpoint, '--work-dir', args.work_dir, *options
    ], check=True)
    print(f'MVP demo checkpoint: {checkpoint}')


if __name__ == '__main__':
    main()
