#!/usr/bin/env bash
# Install mvp_mm and everything it needs into the current Python environment.
#   bash tools/install.sh                    # the package
#   bash tools/install.sh --tests            # the package and the test extras
#   bash tools/install.sh --wheelhouse DIR   # offline, from tools/make_wheelhouse.sh's DIR
# torch/torchvision are installed only if missing (keep your CUDA build);
# with --wheelhouse they must be there already (the wheelhouse has none).
# mmcv-lite is installed only if no mmcv distribution is present: a full,
# compiled mmcv is never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=$(command -v python || command -v python3)
PIP="$PYTHON -m pip"

extras=""
index=()
while [ $# -gt 0 ]; do
    case "$1" in
        --tests) extras="tests"; shift ;;
        --wheelhouse)
            [ $# -ge 2 ] && [ -d "$2" ] || {
                echo "install.sh: --wheelhouse needs the folder that tools/make_wheelhouse.sh wrote" >&2
                exit 2; }
            index=(--no-index --find-links "$2"); shift 2 ;;
        *) echo "install.sh: unknown option $1 (--tests, --wheelhouse DIR)" >&2; exit 2 ;;
    esac
done

if ! "$PYTHON" -c "import torch, torchvision" 2>/dev/null; then
    if [ ${#index[@]} -gt 0 ]; then
        echo "install.sh: $PYTHON has no torch/torchvision, and the wheelhouse has none by" \
            "design: install the node's CUDA build first (e.g. module load, conda, or its own" \
            "wheels), then rerun." >&2
        exit 1
    fi
    $PIP install torch torchvision
fi

if "$PYTHON" -c "import importlib.metadata as m; m.version('mmcv')" 2>/dev/null; then
    echo "mvp_mm: keeping the installed full mmcv"
elif "$PYTHON" -c "import importlib.metadata as m; m.version('mmcv-lite')" 2>/dev/null; then
    echo "mvp_mm: keeping the installed mmcv-lite"
else
    extras="${extras:+$extras,}lite"
fi

$PIP install ${index[@]+"${index[@]}"} -e ".${extras:+[$extras]}"
