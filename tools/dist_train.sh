#!/usr/bin/env bash
# Multi-GPU / multi-node training with torchrun.
#   [MAX_RESTARTS=3] bash tools/dist_train.sh CONFIG NUM_GPUS [train.py args]
# Multi-node: the same line on every node, with NNODES, MASTER_ADDR (the
# first node's address) and PORT set.
# A worker that dies (killed, a lost GPU, an error) makes torchrun stop the
# others and start the worker group again, up to MAX_RESTARTS times (default
# 3; 0: the first failure ends the run); the restarted group resumes from the
# newest complete checkpoint on its own (docs/cluster.md).
set -euo pipefail
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
MAX_RESTARTS=${MAX_RESTARTS:-3}
DIR=$(cd "$(dirname "$0")" && pwd)

# The c10d rendezvous, each restart with a store of its own: the static one
# (torchrun's default) and a store shared across restarts hand restarted
# workers their predecessors' addresses now and then, and they fail to
# connect (https://github.com/pytorch/pytorch/issues/135712).
TORCH_DISABLE_SHARE_RDZV_TCP_STORE=${TORCH_DISABLE_SHARE_RDZV_TCP_STORE:-1} \
PYTHONPATH="$DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --nproc_per_node="$GPUS" \
    --rdzv-backend=c10d \
    --rdzv-endpoint="$MASTER_ADDR:$PORT" \
    --max-restarts="$MAX_RESTARTS" \
    "$DIR/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
