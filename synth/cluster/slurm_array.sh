#!/bin/bash
# Metamer synthesis as a Slurm array job: task K of N runs `metamers synth
# --shard K/N`, i.e. every N-th (clip, stage, seed) of the full job list, so
# each task gets a mix of cheap and costly stages.
#
#   1. once, before submitting (the null distribution every shard uses):
#        ./metamers null --model "$MODEL" --manifest TRAIN.csv --split train
#   2. submit (settings through the environment, defaults below):
#        jid=$(sbatch --parsable --array=1-20 synth/cluster/slurm_array.sh)
#   3. when all tasks are done, one table for the whole run:
#        sbatch --dependency=afterok:$jid --wrap "./metamers synth merge $OUT"
#
# All tasks write into the same $OUT (a shared filesystem): every metamer has
# its own files and each shard its own metamers.shard-K-of-N.csv. A task that
# is preempted, killed or times out resumes from its checkpoints when run
# again (--requeue, or resubmit the same array): results are bit-identical to
# an uninterrupted run. Shards may also write to separate folders and be
# merged with `metamers synth merge DIR1 DIR2 ... --out OUT`.
#
#SBATCH --job-name=metamers-synth
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --output=synth-%A_%a.log
set -euo pipefail

METAMERS=${METAMERS:-./metamers}
MODEL=${MODEL:-models/default.safetensors}
MANIFEST=${MANIFEST:-stimuli/demo/manifest.csv}
OUT=${OUT:-metamers-out}
PRESET=${PRESET:-feather2023}
STAGES=${STAGES:-all}
SEEDS=${SEEDS:-1}

# Works for --array=1-N and --array=0-(N-1) alike.
: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=1-N}"
N=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:-$((SLURM_ARRAY_TASK_MAX - SLURM_ARRAY_TASK_MIN + 1))}}
K=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-1} + 1))

# One worker per allocated core; OpenBLAS threads are managed by metamers.
export OPENBLAS_NUM_THREADS=1
exec "$METAMERS" synth --model "$MODEL" --manifest "$MANIFEST" --stages "$STAGES" \
    --seeds "$SEEDS" --preset "$PRESET" --out "$OUT" \
    --shard "$K/$N" --threads "${SLURM_CPUS_PER_TASK:-1}"
