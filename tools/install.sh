#!/usr/bin/env bash
# Install mvp_mm and everything it needs into the current Python environment.
#   bash tools/install.sh           # the package
#   bash tools/install.sh --tests   # the package and the test extras
# torch/torchvision are installed only if missing (keep your CUDA build).
# mmcv-lite is installed only if no mmcv distribution is present: a full,
# compiled mmcv is never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip"

extras=""
[ "${1:-}" = "--tests" ] && extras="tests"

if ! python -c "import torch, torchvision" 2>/dev/null; then
    $PIP install torch torchvision
fi

if python -c "import importlib.metadata as m; m.version('mmcv')" 2>/dev/null; then
    echo "mvp_mm: keeping the installed full mmcv"
elif python -c "import importlib.metadata as m; m.version('mmcv-lite')" 2>/dev/null; then
    echo "mvp_mm: keeping the installed mmcv-lite"
else
    extras="${extras:+$extras,}lite"
fi

$PIP install -e ".${extras:+[$extras]}"
