#!/usr/bin/env bash
# The GPU check: one command on a machine with a CUDA GPU, under 10 minutes
# on one GPU.
#   1. the CUDA tests: python -m pytest tests -m cuda (fp16/bf16 autocast
#      student vs mmpretrain, bf16 teacher, AMP train step with a moving
#      loss scale, fused AdamW, torch.compile, UperNet under AMP; NCCL with
#      2 GPUs);
#   2. tools/benchmark.py: the ViT-B/16 MVP step, bf16, batch 256 (img/s,
#      mvp vs stock, MFU);
#   3. tools/benchmark.py --data: the data pipeline per loader core;
# then OUT_DIR/summary.json (pass/fail counts, the figures) and a non-zero
# exit if anything failed.
#
#   source .venv/bin/activate          # it runs the active env's `python`
#   bash tools/gpu_check.sh [OUT_DIR]  # default: work_dirs/gpu_check
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-work_dirs/gpu_check}
CONFIG=configs/pretrain/mvp_vit-b16_300e_in1k.py

python - <<'EOF' || exit 2
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f'gpu_check: no CUDA GPU: torch.cuda.is_available() is False '
             f'for {sys.executable} (torch {torch.__version__}). Run it on '
             'a GPU machine, with a CUDA build of torch in the active '
             'environment.')
EOF
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1  # the benchmark writes its own random CLIP

status=0
python -m pytest tests -m cuda -q -rs -p no:cacheprovider \
    --junitxml="$OUT/tests.xml" 2>&1 | tee "$OUT/tests.log" || status=1
python tools/benchmark.py "$CONFIG" --device cuda --batch-size 256 \
    --steps 10 --warmup 3 --cfg-options optim_wrapper.dtype=bfloat16 \
    --json "$OUT/benchmark.json" 2>&1 | tee "$OUT/benchmark.log" || status=1
python tools/benchmark.py "$CONFIG" --data --steps 3 \
    --json "$OUT/data.json" 2>&1 | tee "$OUT/data.log" || status=1
python tools/gpu_check_summary.py "$OUT" || status=1
exit $status
