"""The README's first command: MVP pre-training end to end, then pictures.

1. Writes ``data/mvp_demo`` from the real photographs that scikit-image
   ships (no download): 40 ImageNet-format crops of 5 photos to train on,
   4 other photos held out, and labelled faces and non-faces (its
   ``lfw_subset``) for the k-NN monitor.
2. Pre-trains ``configs/pretrain/mvp_vit-tiny-p16_6e_demo.py`` on them, in
   this process: the paper config shrunk (4-block ViT-Ti student, CLIP
   ViT-B/16 teacher), with the student-teacher alignment on the held-out
   photos evaluated every epoch and the student's k-NN accuracy every 3.
3. Draws ``curves.png`` (training loss, held-out alignment, k-NN) and
   ``attention.png`` (the student's last-block CLS attention on the held-out
   photos) into the work dir.

The console shows a line per epoch and any warning; mmengine's full log
(environment, config, every iteration) is in the work dir. The teacher has
OpenAI's CLIP weights when open_clip can get them (its cache or a download);
otherwise it is a randomly initialised CLIP, and the demo says so.
"""
import argparse
import os
import os.path as osp
import shutil
from typing import List

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'pretrain', 'mvp_vit-tiny-p16_6e_demo.py')
DATA_ROOT = 'data/mvp_demo'  # the config's data_root
MANIFEST = 'demo_files.txt'  # what the demo wrote under DATA_ROOT
# The teacher's loud warning when it falls back to random weights.
RANDOM_TEACHER = 'Falling back to a RANDOMLY INITIALISED'


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='Outputs: WORK_DIR/curves.png, WORK_DIR/attention.png, '
        'WORK_DIR/epoch_6.pth and the full log WORK_DIR/<time>/<time>.log.')
    parser.add_argument('--work-dir', default='work_dirs/mvp_demo')
    parser.add_argument(
        '--cfg-options', nargs='+', default=[],
        help='config overrides, as for tools/train.py, e.g. '
        'model.target_generator.pretrained=/path/to/clip.pt')
    return parser.parse_args()


def _files_under(root: str) -> List[str]:
    return sorted(
        osp.relpath(osp.join(folder, name), root)
        for folder, _, names in os.walk(root) for name in names
        if name != MANIFEST)


def prepare_data(root: str = DATA_ROOT) -> List[str]:
    """Write the demo's images, or check the ones a previous run wrote.

    Returns:
        List[str]: The held-out photos.
    """
    from mvp_mm.utils import (make_lfw_imagenet_folders,
                              make_photo_imagenet_folder, write_photos)
    if not osp.isdir(root):
        print(f'Writing the demo images (real photographs from '
              f'scikit-image) to {root}')
        partial = root + '.partial'
        shutil.rmtree(partial, ignore_errors=True)
        make_photo_imagenet_folder(partial, num_classes=5,
                                   images_per_class=8, split='train', seed=0)
        write_photos(osp.join(partial, 'val'))
        make_lfw_imagenet_folders(osp.join(partial, 'knn'),
                                  train_per_class=15, val_per_class=10)
        with open(osp.join(partial, MANIFEST), 'w') as f:
            f.write('\n'.join(_files_under(partial)) + '\n')
        os.replace(partial, root)  # all or nothing
    manifest = osp.join(root, MANIFEST)
    written = []
    if osp.isfile(manifest):
        with open(manifest) as f:
            written = f.read().split()
    if not written or written != _files_under(root):
        raise RuntimeError(
            f'{root} holds other files than the demo images (no {MANIFEST}, '
            'or files added or missing): an older demo version or your own '
            'data. Move or delete the folder and rerun; the demo writes it '
            'again.')
    return sorted(osp.join(root, path) for path in written
                  if path.startswith('val' + os.sep))


def draw_attention(config: str, checkpoint: str, cfg_options: dict,
                   photos: List[str], out: str, caption: str) -> None:
    """The held-out photos (top), the student's attention (bottom), a colour
    bar and ``caption``."""
    from PIL import Image

    from mvp_mm.analysis import (attention_panels, explained_figure,
                                 figure_row, load_vit_subject)
    student = load_vit_subject(config, checkpoint, cfg_options)
    inputs, overlays = [], []
    for path in photos:
        (crop, overlay), _ = attention_panels([student], path)
        inputs.append(crop)
        overlays.append(overlay)
    names = [osp.splitext(osp.basename(path))[0] for path in photos]
    rows = [
        figure_row(inputs, names),
        figure_row(overlays, ['student: CLS attention'] * len(photos))
    ]
    canvas = Image.new('RGB', (rows[0].width, 2 * rows[0].height), 'white')
    for index, row in enumerate(rows):
        canvas.paste(row, (0, index * row.height))
    explained_figure(canvas, caption).save(out)


def main():
    args = parse_args()  # before the imports: --help at once
    from demo_progress import ProgressHook
    # tools/train.py, next to this file: the same config handling as training.
    from train import load_config
    from train import parse_args as parse_train_args

    from mvp_mm.analysis import (describe_teacher, plot_training_curves,
                                 read_scalars)
    from mvp_mm.engine import QuietConsoleRunner, find_resume_checkpoint
    photos = prepare_data()
    train_args = parse_train_args(
        [CONFIG, '--work-dir', args.work_dir] +
        (['--cfg-options', *args.cfg_options] if args.cfg_options else []))
    cfg = load_config(train_args)
    runner = QuietConsoleRunner.from_cfg(cfg)
    runner.register_hook(ProgressHook())
    backbone = runner.model.backbone
    random_teacher = any(RANDOM_TEACHER in message
                         for message in runner.console_warnings)
    models = (f'{len(backbone.layers)}-block ViT-{backbone.embed_dims} '
              f'student, CLIP {cfg.model.target_generator.model_name} '
              'teacher' + (', RANDOMLY INITIALISED' if random_teacher else ''))
    print(f'Pre-training MVP for {runner.max_epochs} epochs of '
          f'{len(runner.train_dataloader)} iterations ({models}). Full log: '
          f'{runner.logger.log_file}', flush=True)
    runner.train()

    work_dir = osp.abspath(args.work_dir)
    curves = osp.join(work_dir, 'curves.png')
    plot_training_curves(
        read_scalars([osp.join(runner.log_dir, 'vis_data', 'scalars.json')]),
        curves, title=f'MVP demo ({models})')
    attention = osp.join(work_dir, 'attention.png')
    checkpoint = find_resume_checkpoint(work_dir)
    draw_attention(
        CONFIG, checkpoint, train_args.cfg_options, photos, attention,
        f'{osp.relpath(checkpoint)}: the demo student after {runner.iter} '
        f'iterations; {describe_teacher(cfg, checkpoint)}')
    print(f'Checkpoint: {checkpoint}\n'
          f'Curves:     {curves}\n'
          f'Attention:  {attention}\n'
          f'Full log:   {runner.logger.log_file}')
    if random_teacher:
        print('!!! The teacher was a RANDOMLY INITIALISED CLIP (its weights '
              'could not be had): this run shows the mechanics, not what MVP '
              'learns. For OpenAI weights: --cfg-options '
              'model.target_generator.pretrained=/path/to/clip.pt')


if __name__ == '__main__':
    main()
