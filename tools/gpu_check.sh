#!/usr/bin/env bash
# The GPU check: one command on a machine with a CUDA GPU, under 8 minutes
# on one H100-class GPU (the steps' time caps add up to 7.5 minutes), in this
# order, the figure that matters most first:
#   1. benchmark: tools/benchmark.py, the ViT-B/16 MVP step, bf16, batch 256
#      (img/s, mvp vs stock, MFU);                          cap 150 s
#   2. tests: python -m pytest tests -m cuda (fp16/bf16 autocast student vs
#      mmpretrain, bf16 teacher, AMP train step with a moving loss scale,
#      fused AdamW, torch.compile's first build, UperNet under AMP; NCCL
#      with 2 GPUs);                                         cap 240 s
#   3. data: tools/benchmark.py --data, the data pipeline per loader core;
#                                                            cap  60 s
# A step that runs past its cap is interrupted (SIGINT: pytest still writes
# its report; SIGKILL 20 s later) and costs only its share. Then, always,
# OUT_DIR/summary.json (pass/fail counts, the figures, each step's exit
# code, time and cap) and a non-zero exit if anything failed or timed out.
#
#   bash tools/gpu_check.sh [--cpu] [OUT_DIR]   # default: work_dirs/gpu_check
#
# It runs the active environment's python3 (or python). --cpu: the same
# steps on CPU at tiny sizes (the demo config's student and teacher shrunk),
# so that the script itself is tested without a GPU
# (tests/test_tools/test_gpu_check.py).
# Caps in seconds: GPU_CHECK_BENCHMARK_S, GPU_CHECK_TESTS_S, GPU_CHECK_DATA_S.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=$(command -v python3 || command -v python) || {
    echo 'gpu_check: neither python3 nor python on PATH' >&2; exit 2; }

cpu=0
if [ "${1:-}" = "--cpu" ]; then cpu=1; shift; fi
OUT=${1:-work_dirs/gpu_check}

if [ $cpu = 1 ]; then
    CONFIG=configs/pretrain/mvp_vit-tiny-p16_6e_demo.py
    G=model.target_generator.model_overrides
    BENCHMARK=(--device cpu --threads 1 --batch-size 2 --steps 1 --warmup 0
        --masks 20 --cfg-options model.backbone.arch.embed_dims=32
        model.backbone.arch.num_layers=1 model.backbone.arch.num_heads=2
        model.backbone.arch.feedforward_channels=64 $G.embed_dim=16
        $G.vision_cfg.image_size=224 $G.vision_cfg.layers=1
        $G.vision_cfg.width=64 $G.vision_cfg.patch_size=16
        $G.vision_cfg.head_width=64 $G.text_cfg.context_length=8
        $G.text_cfg.vocab_size=100 $G.text_cfg.width=64 $G.text_cfg.heads=1
        $G.text_cfg.layers=1)
    DATA=(--workers 1 --data-images 4 --steps 1)
else
    CONFIG=configs/pretrain/mvp_vit-b16_300e_in1k.py
    BENCHMARK=(--device cuda --batch-size 256 --steps 10 --warmup 3
        --cfg-options optim_wrapper.dtype=bfloat16)
    DATA=(--steps 3)
    "$PYTHON" - <<'EOF' || exit 2
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f'gpu_check: no CUDA GPU: torch.cuda.is_available() is False '
             f'for {sys.executable} (torch {torch.__version__}). Run it on '
             'a GPU machine, with a CUDA build of torch in the active '
             'environment (or bash tools/gpu_check.sh --cpu for the CPU '
             'twin).')
EOF
fi
mkdir -p "$OUT"
rm -f "$OUT/steps.tsv" "$OUT/summary.json"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1  # the benchmark writes its own random CLIP

# step NAME CAP COMMAND...: runs COMMAND under its cap, output to the
# console and OUT/NAME.log, and records "NAME exit-code seconds cap".
step() {
    local name=$1 cap=$2 start=$SECONDS rc
    shift 2
    echo "gpu_check: $name (cap $cap s)"
    timeout -s INT -k 20 "$cap" "$@" 2>&1 | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 124 ] && echo "gpu_check: $name timed out after $cap s"
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$cap" \
        >> "$OUT/steps.tsv"
}

step benchmark "${GPU_CHECK_BENCHMARK_S:-150}" "$PYTHON" tools/benchmark.py \
    "$CONFIG" "${BENCHMARK[@]}" --json "$OUT/benchmark.json"
step tests "${GPU_CHECK_TESTS_S:-240}" "$PYTHON" -m pytest tests -m cuda -q \
    -rs -p no:cacheprovider --junitxml="$OUT/tests.xml"
step data "${GPU_CHECK_DATA_S:-60}" "$PYTHON" tools/benchmark.py "$CONFIG" \
    --data "${DATA[@]}" --json "$OUT/data.json"
summary=()
[ $cpu = 1 ] && summary=(--cpu)
"$PYTHON" tools/gpu_check_summary.py "$OUT" ${summary[@]+"${summary[@]}"}
