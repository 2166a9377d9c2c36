"""CLS-query attention maps of the last block, averaged over heads (the MVP
paper's Figure 3, https://arxiv.org/abs/2203.05175), overlaid on images.

    # an MVP checkpoint
    python tools/analysis/visualize_attention.py \
        configs/pretrain/mvp_vit-b16_300e_in1k.py epoch_300.pth \
        img1.jpg img2.jpg --out work_dirs/attention
    # side by side with DINO and CLIP, like Fig. 3
    python tools/analysis/visualize_attention.py \
        configs/pretrain/mvp_vit-b16_300e_in1k.py epoch_300.pth img1.jpg \
        --compare timm:vit_base_patch16_224.dino pretrained \
        --compare open_clip:ViT-B-16-quickgelu openai --out work_dirs/attention

MODEL is a config file, ``timm:NAME`` or ``open_clip:NAME``; CHECKPOINT is
then a checkpoint file, ``pretrained`` / a file (timm), a tag / a file
(open_clip), or ``none`` (random weights, for tests). One PNG per image:
the input, then one overlay per model, a colour bar and a caption (the
checkpoint; for an MVP config, whether its teacher was pretrained or
random). The arguments are checked before the libraries are imported
(tools/argument_checks.py).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.append(osp.dirname(osp.dirname(osp.abspath(__file__))))
from argument_checks import (add_cfg_options, config_file,  # noqa: E402
                             existing_file)

NO_WEIGHTS = 'none'  # mvp_mm.analysis.vit_subjects: random weights
CHECKPOINT = existing_file(
    'checkpoint', "pass the checkpoint file of the config's run, or "
    f'{NO_WEIGHTS!r} for random weights')


def check_model(parser: argparse.ArgumentParser, model: str,
                checkpoint: str) -> None:
    """A config MODEL must exist, with a checkpoint file or ``none``;
    ``timm:`` / ``open_clip:`` names and tags are checked when loaded."""
    family, _, name = model.partition(':')
    if family in ('timm', 'open_clip') and name:
        return
    try:
        config_file(model)
        if checkpoint != NO_WEIGHTS:
            CHECKPOINT(checkpoint)
    except argparse.ArgumentTypeError as error:
        parser.error(f'{error} (MODEL is a config file, timm:NAME or '
                     'open_clip:NAME)')


def parse_args():
    parser = argparse.ArgumentParser(
        description='Overlay last-block CLS attention on images')
    parser.add_argument('model', help='config file, timm:NAME or '
                        'open_clip:NAME')
    parser.add_argument('checkpoint', help='weights for MODEL (see above)')
    parser.add_argument(
        'images', nargs='+',
        type=existing_file('image', 'pass image files', pattern=None),
        help='image files')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--compare', nargs=2, action='append', default=[],
        metavar=('MODEL', 'CHECKPOINT'),
        help='another model to show next to the first (repeatable)')
    parser.add_argument('--size', type=int, default=224,
                        help='side of each panel in pixels')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='opacity of the heat map')
    add_cfg_options(parser, 'model.backbone.arch=large (config files)')
    args = parser.parse_args()
    for model, checkpoint in [(args.model, args.checkpoint)] + args.compare:
        check_model(parser, model, checkpoint)
    return args


def caption(model: str, checkpoint: str, cfg_options) -> str:
    """The figure's caption: what MODEL's weights are, and for an MVP
    config the teacher's weights during pre-training."""
    family, _, name = model.partition(':')
    if family in ('timm', 'open_clip') and name:
        return f'{name}, weights {checkpoint!r}'
    from mmengine.config import Config

    from mvp_mm.analysis import describe_teacher
    cfg = Config.fromfile(model)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    weights = 'random weights' if checkpoint == NO_WEIGHTS else checkpoint
    teacher = describe_teacher(cfg, checkpoint)
    return f'{weights} ({osp.basename(model)})' + (
        f'; {teacher}' if teacher else '')


def main():
    args = parse_args()  # before the imports: --help and errors at once
    from mmengine.logging import print_log

    import mvp_mm  # noqa: F401  (registers MVP's modules)
    from mvp_mm.analysis import (attention_panels, explained_figure,
                                 figure_row, load_vit_subject)
    subjects = [
        load_vit_subject(model, checkpoint, args.cfg_options)
        for model, checkpoint in [(args.model, args.checkpoint)] +
        [tuple(pair) for pair in args.compare]
    ]
    text = caption(args.model, args.checkpoint, args.cfg_options)
    os.makedirs(args.out, exist_ok=True)
    for path in args.images:
        panels, titles = attention_panels(subjects, path, args.alpha)
        out = osp.join(args.out,
                       osp.splitext(osp.basename(path))[0] + '_attention.png')
        explained_figure(figure_row(panels, titles, args.size),
                         text).save(out)
        print_log(f'Wrote {out}', logger='current')


if __name__ == '__main__':
    main()
