#!/bin/bash
# Metamer synthesis over several machines (or cores) with GNU parallel:
# N shards of the (clip, stage, seed) list, JOBS at a time per host.
#
#   MODEL=models/default.safetensors MANIFEST=stimuli/demo/manifest.csv \
#   OUT=/shared/metamers N=8 synth/cluster/parallel.sh [--sshloginfile hosts.txt]
#
# Extra arguments go to parallel (e.g. --sshloginfile with a shared working
# directory; see `man parallel`). Rerunning the script resumes every shard
# from its checkpoints and skips finished metamers; the merge at the end
# writes $OUT/metamers.csv.
set -euo pipefail

METAMERS=${METAMERS:-./metamers}
MODEL=${MODEL:-models/default.safetensors}
MANIFEST=${MANIFEST:-stimuli/demo/manifest.csv}
OUT=${OUT:-metamers-out}
PRESET=${PRESET:-feather2023}
STAGES=${STAGES:-all}
SEEDS=${SEEDS:-1}
N=${N:-4}
JOBS=${JOBS:-2}

# The null distribution once, before the shards (they would each compute it).
"$METAMERS" null --model "$MODEL" --manifest "${NULL_MANIFEST:-$MANIFEST}"

seq 1 "$N" | parallel --jobs "$JOBS" --halt now,fail=1 --line-buffer "$@" \
    OPENBLAS_NUM_THREADS=1 "$METAMERS" synth --model "$MODEL" --manifest "$MANIFEST" \
    --stages "$STAGES" --seeds "$SEEDS" --preset "$PRESET" --out "$OUT" \
    --shard "{}/$N" --threads 1 --quiet

"$METAMERS" synth merge "$OUT"
