#!/usr/bin/env bash
# Multi-GPU / multi-node training with torchrun.
#   [MAX_RESTARTS=3] bash tools/dist_train.sh CONFIG NUM_GPUS [train.py args]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT on every node.
# A worker that dies (killed, a lost GPU, an error) makes torchrun stop the
# others and start the worker group again, up to MAX_RESTARTS times (default
# 3; 0: the first failure ends the run); the restarted group resumes from the
# newest complete checkpoint on its own (docs/cluster.md).
set -euo pipefail
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
MAX_RESTARTS=${MAX_RESTARTS:-3}
DIR=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    --max-restarts="$MAX_RESTARTS" \
    "$DIR/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
