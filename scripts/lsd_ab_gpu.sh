#!/usr/bin/env bash
# Does the local-shape-descriptor head help the affinity network? One GPU call, two arms side by side:
# the shipped network fine-tuned from the same weights, on the same volumes, with the same schedule and
# the same wall time, once as it is ("plain") and once with the descriptor head ("lsd"). Each arm's
# validation loss is the affinity loss alone, so the two logs compare directly (also at equal iterations,
# should the arms run at different speeds). Score both here afterwards:
#
#   bash scripts/lsd_ab_gpu.sh $OUT [DEADLINE_S, default 480] [more train_gpu.py options]   (on the GPU machine)
#   .venv/bin/python benchmarks/bench_agglomeration.py --model OUT/plain/seg --methods 'connectomix (xy)'
#   .venv/bin/python benchmarks/bench_agglomeration.py --model OUT/lsd/seg --methods 'connectomix (xy)'
#
# Environment: DEVICE (cuda), VOLUMES (64 training volumes, seeds from FIRST=0 of TRAIN_SEEDS),
# PLAIN_WORKERS (6) and LSD_WORKERS (9) patch processes, GEN (8) generator processes per arm,
# AUX_WEIGHT (1.0), PYTHON (python3). Needs cc3d on the machine (see train_gpu.py: carry its wheel, PYTHONPATH).
set -euo pipefail
OUT=${1:?usage: lsd_ab_gpu.sh OUT [DEADLINE_S] [train_gpu.py options]}
shift
DEADLINE=480
if [[ ${1-} =~ ^[0-9]+([.][0-9]+)?$ ]]; then DEADLINE=$1; shift; fi
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
# fresh work folders: a warm machine's old checkpoints would be resumed instead of the shipped weights
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lsd-ab.XXXX")
common=(--tasks affinities --init-shipped --features 16 --volumes "${VOLUMES:-64}" --first-volume "${FIRST:-0}"
        --gen-workers "${GEN:-8}" --schedule cosine --warmup 300 --lr 5e-4 --memory-format channels_last
        --deadline "$DEADLINE" --minutes 30
        --skip-throughput --device "${DEVICE:-cuda}" "$@")
"${PYTHON:-python3}" scripts/train_gpu.py --out "$OUT/plain" --work "$WORK/plain" --workers "${PLAIN_WORKERS:-6}" \
    "${common[@]}" > "$OUT/plain.log" 2>&1 &
plain=$!
"${PYTHON:-python3}" scripts/train_gpu.py --out "$OUT/lsd" --work "$WORK/lsd" --workers "${LSD_WORKERS:-9}" \
    --aux lsd --aux-weight "${AUX_WEIGHT:-1.0}" "${common[@]}" > "$OUT/lsd.log" 2>&1 &
lsd=$!
status=0
wait $plain || status=$?
wait $lsd || status=$?
for arm in plain lsd; do
    echo "== $arm"; tail -n 4 "$OUT/$arm.log" || true
    grep -v ',,' "$OUT/$arm/seg/log.csv" 2>/dev/null | tail -n 3 || true
done
exit $status
