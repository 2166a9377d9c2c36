#!/usr/bin/env bash
# Every wheel mvp_mm needs except torch and torchvision, in one folder, for
# a GPU node with no network and its own (CUDA) torch. On a machine that
# reaches PyPI:
#   bash tools/make_wheelhouse.sh [--python-version 3.12] [--platform TAG] [DIR]
# then copy DIR and this repository to the node and, there, with its torch
# in the active environment:
#   bash tools/install.sh --wheelhouse DIR [--tests]
#
# DIR (default: wheelhouse) gets the OpenMMLab stack (mmengine, mmpretrain,
# mmsegmentation, mmcv-lite), open_clip, timm, their pure-Python and compiled
# dependencies, pytest (tools/gpu_check.sh runs the CUDA tests), and
# setuptools<81 + wheel (mmengine's pkg_resources; the editable install of
# this package). Left out: torch, torchvision and what only torch pulls in
# (nvidia-*, cuda-*, triton): the node's own stay.
#   --python-version X.Y  the node's Python (default: the one running this)
#   --platform TAG        the node's platform tag if it differs from this
#                         machine's, e.g. manylinux_2_28_aarch64 (GH200)
# Versions are those pip resolves today for setup.py's requirements (with
# the extras lite and tests); DIR/requirements.txt lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=$(command -v python3 || command -v python)

target=()
dir=wheelhouse
while [ $# -gt 0 ]; do
    case "$1" in
        --python-version|--platform)
            [ $# -ge 2 ] || { echo "make_wheelhouse: $1 needs a value" >&2; exit 2; }
            target+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) echo "make_wheelhouse: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) dir=$1; shift ;;
    esac
done
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. What pip would install into an empty environment (torch included, so
#    that the versions fit any torch the node has), without installing:
#    --target makes the platform options legal; --dry-run writes nothing.
"$PYTHON" -m pip install --dry-run --ignore-installed --quiet \
    --only-binary=:all: --target "$work/unused" ${target[@]+"${target[@]}"} \
    --report "$work/report.json" ".[lite,tests]" "setuptools<81" wheel
# 2. Those releases, less the torch family and this package.
"$PYTHON" - "$work/report.json" "$dir/requirements.txt" <<'EOF'
import json
import re
import sys

report, out = sys.argv[1:]
LEFT_OUT = re.compile(r'(torch|torchvision|triton|nvidia-.*|cuda-.*)')
pins = []
for item in json.load(open(report))['install']:
    name = re.sub(r'[-_.]+', '-', item['metadata']['name']).lower()
    # dir_info: this repository itself (installed editable on the node)
    if 'dir_info' in item['download_info'] or LEFT_OUT.fullmatch(name):
        continue
    pins.append(f"{name}=={item['metadata']['version']}")
with open(out, 'w') as f:
    f.write('\n'.join(sorted(pins)) + '\n')
EOF
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    ${target[@]+"${target[@]}"} -d "$dir" -r "$dir/requirements.txt"
echo "make_wheelhouse: $(ls "$dir"/*.whl | wc -l) wheels in $dir" \
    "($(du -sh "$dir" | cut -f1)); on the node: bash tools/install.sh --wheelhouse $dir"
