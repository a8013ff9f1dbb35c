#!/bin/bash
# A reproduction's paper preset as a Slurm job array: one shard of its (setting, repeat) jobs per
# array task, then a dependent job that merges the shard folders (docs/reproductions.md).
#
#   NAME=schizo-cifar SHARDS=20 sbatch --array=0-19 docs/slurm-reproduce.sh
#   # after the array: the merge job is submitted by the first task (see below), or by hand:
#   cargo xtask merge-results --inputs results/schizo-cifar-shards/* --out results/schizo-cifar
#
# Each task resumes its own shard folder when it is requeued (--resume), so a preempted or
# timed-out task continues where it stopped. SHARDS must equal the array size.
#SBATCH --job-name=reproduce
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=slurm-%x-%A_%a.out
set -euo pipefail

NAME=${NAME:?set NAME to the experiment, e.g. schizo-cifar}
PRESET=${PRESET:-paper}
SHARDS=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:?run as an array job}}
DATA=${DATA:-../shared/data}
BASE=${BASE:-results/${NAME}-${PRESET}-shards}
I=${SLURM_ARRAY_TASK_ID:?run as an array job}
OUT="$BASE/$I"

export RAYON_NUM_THREADS=${SLURM_CPUS_PER_TASK:-2}
cargo build --release -p xtask
XTASK=target/release/xtask

# A folder with a config.toml is a started shard: continue it.
RESUME=()
if [ -f "$OUT/config.toml" ]; then RESUME=(--resume); fi
"$XTASK" reproduce "$NAME" --preset "$PRESET" --shard "$I/$SHARDS" \
    --data "$DATA" --out "$OUT" --no-progress "${RESUME[@]}"

# The first task submits the merge, to run once every task of the array has succeeded.
if [ "$I" = 0 ]; then
    inputs=()
    for ((k = 0; k < SHARDS; k++)); do inputs+=("$BASE/$k"); done
    sbatch --dependency="afterok:${SLURM_ARRAY_JOB_ID}" --job-name="merge-$NAME" \
        --cpus-per-task=1 --time=01:00:00 \
        --wrap="$XTASK merge-results --inputs ${inputs[*]} --out results/${NAME}-${PRESET}"
fi
