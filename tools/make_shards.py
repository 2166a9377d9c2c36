"""Convert images into WebDataset tar shards that ShardDataset reads by index.

SRC is one of

- ImageNet-style class folders, ``SRC/<class>/<image>``: ``<key>.jpg`` (the
  file's own extension for PNG etc.) and ``<key>.cls`` (the class index, as
  mmpretrain numbers the sorted folders);
- a flat folder of images, ``SRC/**/<image>`` (found when SRC holds images
  directly, or forced with ``--no-labels``): ``<key>.jpg`` only;
- the folder the paths of ``--ann-file`` (an mmpretrain annotation list,
  ``'<path> <label>'`` lines) are relative to.

OUT gets ``shard-000000.tar``, ... (about ``--shard-size`` MB each) and
``shardindex.json`` (wids's shard list). Sample ``i`` is sample ``i`` of the
folder dataset the configs would read from SRC (same order, so the same
per-sample seed, crop and mask), its bytes copied unchanged. The output is
the same for the same input; an interrupted conversion run again keeps the
finished shards that still match their sources and redoes the rest; every
shard is read back and checked before it is kept, and the finished index is
checked again at the end. ``--verify`` compares existing shards with SRC,
byte for byte, and writes nothing.

Examples::

    python tools/make_shards.py data/imagenet/train data/imagenet_shards
    python tools/make_shards.py data/imagenet/train data/imagenet_shards \
        --ann-file data/imagenet/meta/train.txt    # ImageNet with its list
    python tools/make_shards.py data/photos data/photo_shards --no-labels
    python tools/make_shards.py data/imagenet/train data/imagenet_shards \
        --verify

Layout and when to use shards: docs/shards.md.

The arguments are checked before mvp_mm is imported
(tools/argument_checks.py), so ``--help`` and a wrong argument answer at
once.

Paper: https://arxiv.org/abs/2203.05175
"""
import argparse
import sys
import time

from argument_checks import existing_file, existing_folder

# mvp_mm.datasets.shard_writer.DEFAULT_SHARD_MB, without importing mvp_mm
# for --help (tests/test_tools/test_tool_arguments.py checks they agree).
DEFAULT_SHARD_MB = 1000


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert an image folder or annotation list into '
        'WebDataset tar shards with a wids index')
    parser.add_argument('src', type=existing_folder('SRC'), help='class folders, a flat image folder, or '
                        'the root of --ann-file\'s paths')
    parser.add_argument('out', help='output folder for the shards and '
                        'shardindex.json')
    parser.add_argument(
        '--shard-size', type=float, default=DEFAULT_SHARD_MB, metavar='MB',
        help=f'largest shard in MB (10^6 bytes). Default: {DEFAULT_SHARD_MB}')
    parser.add_argument(
        '--ann-file',
        type=existing_file('annotation list', "pass mmpretrain's "
                           "'<path> <label>' list file", pattern='*.txt'),
        help="mmpretrain annotation list, '<path> <label>' "
        'lines (paths relative to SRC)')
    parser.add_argument(
        '--no-labels', action='store_true',
        help='no labels: every image under SRC (or each line of --ann-file '
        'is a path)')
    parser.add_argument(
        '--verify', action='store_true',
        help='write nothing: compare the shards in OUT with SRC, every '
        'sample byte for byte')
    return parser.parse_args()


def main() -> int:
    args = parse_args()  # before the imports: --help and errors at once
    from tqdm import tqdm

    from mvp_mm.datasets.shard_writer import (convert_to_shards,
                                              verify_against_source,
                                              verify_index)
    with_label = False if args.no_labels else None
    if args.verify:
        problems = verify_against_source(args.src, args.out, args.ann_file,
                                         with_label)
        return report_problems(problems, f'{args.out} matches {args.src}')
    bars = []

    def on_plan(total: int, shards: int) -> None:
        bars.append(tqdm(total=total, unit='B', unit_scale=True,
                         unit_divisor=1000, file=sys.stdout, mininterval=1.0,
                         desc=f'make_shards ({shards} shards)'))

    start = time.perf_counter()
    result = convert_to_shards(args.src, args.out, args.shard_size,
                               args.ann_file, with_label,
                               lambda nbytes: bars[0].update(nbytes),
                               on_plan)
    seconds = time.perf_counter() - start
    bars[0].close()
    print(f"{result['samples']} images ({result['layout']}, "
          f"{'with' if result['labelled'] else 'no'} labels) in "
          f"{result['shards']} shards: {result['written']} written, "
          f"{result['kept']} kept from an earlier run; "
          f"{result['image_bytes'] / 1e6:.1f} MB in {seconds:.1f} s "
          f"({result['image_bytes'] / 1e6 / seconds:.1f} MB/s, "
          f"{result['samples'] / seconds:.0f} images/s)")
    print(f"verifying {result['index']} ...")
    return report_problems(verify_index(args.out),
                           f"{result['index']}: every shard verified")


def report_problems(problems, ok: str) -> int:
    if not problems:
        print(ok)
        return 0
    print(f'{len(problems)} problem(s):', *problems[:20], sep='\n  ')
    print('Run the conversion again (without --verify): it rewrites every '
          'shard that does not match its source.')
    return 1


if __name__ == '__main__':
    if main():
        sys.exit(1)
