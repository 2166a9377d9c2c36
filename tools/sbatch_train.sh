#!/usr/bin/env bash
# Training as a Slurm batch job that outlives its time limit (docs/cluster.md).
#   [GPUS=16 GPUS_PER_NODE=8 TIME=48:00:00 SIGNAL_SECONDS=600] \
#       bash tools/sbatch_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# Submits this script with sbatch --requeue --signal=B:USR1@SIGNAL_SECONDS.
# SIGNAL_SECONDS before the time limit Slurm sends SIGUSR1 to the job's
# shell, which passes it through srun to every training process; they finish
# the iteration, save it (SaveOnSignalHook), rank 0 requeues the job
# (scontrol requeue) and they exit with code 75. The requeued job runs this
# script again with SLURM_RESTART_COUNT set, and tools/train.py resumes from
# the newest complete checkpoint on its own; so does a job Slurm requeues
# after a pre-emption or a node failure. Output: WORK_DIR/slurm-JOBID.out,
# appended to by every restart. Extra sbatch options: SBATCH_ARGS; extra
# srun options: SRUN_ARGS; the interpreter: PYTHON (default python).
set -euo pipefail

if [[ -z "${MVP_MM_TOOLS:-}" ]]; then
    # On the submitting machine.
    PARTITION=$1
    JOB_NAME=$2
    CONFIG=$3
    WORK_DIR=$4
    GPUS=${GPUS:-8}
    GPUS_PER_NODE=${GPUS_PER_NODE:-8}
    CPUS_PER_TASK=${CPUS_PER_TASK:-5}
    TIME=${TIME:-48:00:00}
    SIGNAL_SECONDS=${SIGNAL_SECONDS:-600}
    SBATCH_ARGS=${SBATCH_ARGS:-""}
    DIR=$(cd "$(dirname "$0")" && pwd)
    mkdir -p "$WORK_DIR"  # Slurm writes the output file there
    # sbatch runs a copy of this script: MVP_MM_TOOLS says where the tools are
    exec sbatch -p "$PARTITION" \
        --job-name="$JOB_NAME" \
        --nodes=$(( (GPUS + GPUS_PER_NODE - 1) / GPUS_PER_NODE )) \
        --ntasks="$GPUS" \
        --ntasks-per-node="$GPUS_PER_NODE" \
        --gres=gpu:"$GPUS_PER_NODE" \
        --cpus-per-task="$CPUS_PER_TASK" \
        --time="$TIME" \
        --signal=B:USR1@"$SIGNAL_SECONDS" \
        --requeue \
        --open-mode=append \
        --output="$WORK_DIR/slurm-%j.out" \
        --export=ALL,MVP_MM_TOOLS="$DIR" \
        $SBATCH_ARGS \
        "$DIR/sbatch_train.sh" "$CONFIG" "$WORK_DIR" "${@:5}"
fi

# In the job, at its first start and after every requeue: one task per GPU.
CONFIG=$1
WORK_DIR=$2
SRUN_ARGS=${SRUN_ARGS:-""}
echo "sbatch_train.sh: job ${SLURM_JOB_ID:-?}, restart ${SLURM_RESTART_COUNT:-0}, $(date)"
PYTHONPATH="$MVP_MM_TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
srun --kill-on-bad-exit=1 $SRUN_ARGS \
    "${PYTHON:-python}" -u "$MVP_MM_TOOLS/train.py" "$CONFIG" \
    --work-dir="$WORK_DIR" --launcher=slurm "${@:3}" &
SRUN_PID=$!
# Slurm signals this shell only (B:); srun forwards a signal to every task.
# SIGTERM (scancel, pre-emption, the time limit itself) is passed on too, and
# this shell stays until the tasks have saved and exited.
INTERRUPTED=0
trap 'INTERRUPTED=1; kill -USR1 "$SRUN_PID" 2>/dev/null || true' USR1
trap 'INTERRUPTED=1; kill -TERM "$SRUN_PID" 2>/dev/null || true' TERM
set +e
STATUS=
while :; do
    INTERRUPTED=0
    wait "$SRUN_PID"  # returns early (128 + signal) when a trap runs
    CODE=$?
    if [[ $CODE == 127 && -n $STATUS ]]; then
        break  # srun's status was collected before the last signal came
    fi
    STATUS=$CODE
    [[ $INTERRUPTED == 1 ]] || break
done
exit "$STATUS"
