"""Zero-shot classification / segmentation of an MVP checkpoint and its CLIP
teacher, in one run (no fine-tuning; see mvp_mm/analysis/zero_shot.py).

    python tools/analysis/zero_shot.py \
        configs/pretrain/mvp_vit-b16_300e_in1k.py epoch_300.pth \
        --imagenet data/imagenet/val --ade20k data/ade/ADEChallengeData2016 \
        --out work_dirs/zero_shot.json

``--imagenet`` is mmpretrain's ImageNet root (val/ + meta/val.txt) or a
folder of class folders (WordNet ids, or any names with ``--class-names
FILE``); ``--ade20k`` an ADE20K root (images/validation,
annotations/validation). CLIP's text tower is built from the config's
``model.target_generator`` (same name and weights as the teacher). The
arguments are checked before the libraries are imported
(tools/argument_checks.py).
"""
import argparse
import json
import os
import os.path as osp
import sys
import warnings

sys.path.append(osp.dirname(osp.dirname(osp.abspath(__file__))))
from argument_checks import (add_cfg_options, config_file,  # noqa: E402
                             existing_file, existing_folder, output_file)

# open_clip's prompt ensembles (open_clip.zero_shot_metadata)
TEMPLATES = dict(openai='OPENAI_IMAGENET_TEMPLATES',
                 simple='SIMPLE_IMAGENET_TEMPLATES')


def parse_args():
    parser = argparse.ArgumentParser(
        description='Zero-shot probes of an MVP checkpoint vs its teacher')
    parser.add_argument('config', type=config_file,
                        help='MVP pre-training config')
    parser.add_argument(
        'checkpoint',
        type=existing_file('checkpoint', "pass the .pth file that the "
                           "config's pre-training run wrote"),
        help='MVP pre-training checkpoint')
    parser.add_argument('--imagenet', type=existing_folder('ImageNet root'),
                        help='ImageNet-format class folders')
    parser.add_argument(
        '--class-names',
        type=existing_file('class-name file',
                           'pass a text file with one class name per line',
                           pattern='*.txt'),
        help='one class name per line, sorted folder order')
    parser.add_argument('--ade20k', type=existing_folder('ADE20K root'),
                        help='ADE20K root')
    parser.add_argument('--encoders', nargs='+', default=['mvp', 'clip'],
                        choices=['mvp', 'clip'], help='what to evaluate')
    parser.add_argument('--templates', default='openai',
                        choices=sorted(TEMPLATES),
                        help="prompt ensemble: CLIP's 80 or 2 simple ones")
    parser.add_argument('--max-images', type=int,
                        help='only the first N images of each set')
    parser.add_argument('--batch-size', type=int, default=64)
    cores = len(os.sched_getaffinity(0)) if hasattr(
        os, 'sched_getaffinity') else (os.cpu_count() or 1)
    parser.add_argument(
        '--num-workers', type=int, default=min(4, cores),
        help='loader processes per data set. Default: 4, or the available '
        f'cores if fewer ({min(4, cores)} here)')
    parser.add_argument(
        '--device', help='Default: cuda if torch sees a GPU, else cpu')
    parser.add_argument('--out', type=output_file,
                        help='write the results to this json file')
    add_cfg_options(parser,
                    'model.target_generator.pretrained=/path/clip.pt')
    args = parser.parse_args()
    if not (args.imagenet or args.ade20k):
        parser.error('give --imagenet and/or --ade20k')
    return args


def main():
    args = parse_args()  # before the imports: --help and errors at once
    import open_clip.zero_shot_metadata
    import torch
    from mmengine.config import Config
    from mmengine.logging import print_log

    from mmpretrain.registry import MODELS
    from mvp_mm.analysis import load_state_dict
    from mvp_mm.analysis.zero_shot import (ADE20K_CLASSES, ade20k_loader,
                                           build_text_model, imagenet_loader,
                                           mvp_token_encoders,
                                           read_class_names, text_classifier,
                                           zero_shot_classification,
                                           zero_shot_segmentation)
    # torch warns at every loader it starts with more workers than cores
    # (once per encoder and data set): once is enough.
    warnings.filterwarnings('once', message='This DataLoader will create',
                            category=UserWarning)
    args.device = args.device or ('cuda' if torch.cuda.is_available() else
                                  'cpu')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(cfg.model)
    model.load_state_dict(load_state_dict(args.checkpoint), strict=True)
    model.to(args.device).eval()
    encoders = {k: v for k, v in mvp_token_encoders(model).items()
                if k in args.encoders}
    teacher = cfg.model.target_generator
    text_model = build_text_model(teacher)
    img_size = model.target_generator.img_size
    templates = getattr(open_clip.zero_shot_metadata,
                        TEMPLATES[args.templates])
    results = {}
    if args.imagenet:
        names = read_class_names(args.class_names) if args.class_names \
            else None
        loader = imagenet_loader(args.imagenet, img_size, names,
                                 args.batch_size, args.num_workers,
                                 args.max_images)
        classifier = text_classifier(text_model, teacher.model_name,
                                     loader.dataset.metainfo['classes'],
                                     templates, args.device)
        results['imagenet'] = zero_shot_classification(
            encoders, classifier, loader, model.data_preprocessor)
    if args.ade20k:
        names = ADE20K_CLASSES
        classifier = text_classifier(text_model, teacher.model_name, names,
                                     templates, args.device)
        loader = ade20k_loader(args.ade20k, img_size, args.batch_size,
                               args.num_workers, args.max_images)
        results['ade20k'] = zero_shot_segmentation(
            encoders, classifier, loader, model.data_preprocessor, names)
    print_log(f'Zero-shot results: {json.dumps(results, indent=2)}',
              logger='current')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
