#!/usr/bin/env bash
# The batched step on a GPU (docs/performance.md, "Compare's arms side by side, and in one batched step"), in one go
# (run by hand on a CUDA machine):
#
#     bash benchmarks/gpu_grouped.sh DATA_ROOT OUT_DIR
#
# 1. Runs × steps per second of 1, 4, 16 and 64 MNIST runs (the default preset, batch 32) in one batched step against
#    the same runs each replaying its own CUDA-graph step in turn, in one process (benchmarks/grouped_step.py).
# 2. Whole grids of N runs × STEPS steps (default 300; one scoring of 100 samples at the end), wall time:
#    N worker processes sharing the GPU through CUDA MPS (--workers N) against one process training the N runs in
#    one batched step (--group-runs N). COUNTS (default "4 16") picks N.
# 3. Only with GRID=1: docs/results.md section 1's 56-run grid both ways (14 MPS workers took 401 s on an H200).
# Nothing here is a test; the numbers go to docs/performance.md with the card, torch version and date.
set -u
DATA=$(realpath "${1:?data root (holds MNIST/)}")
OUT=$(realpath -m "${2:?output folder}")
cd "$(dirname "$0")/.."  # the repository root: benchmarks/grouped_step.py is read from there
PY=${PYTHON:-python3}
STEPS=${STEPS:-300}
mkdir -p "$OUT"
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device here (torch.cuda.is_available() is False): nothing measured"
    exit 0
fi
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
EXPERIMENT=("$PY" -c "from minsnr_core.cli import experiment_entry; experiment_entry()")

MPS_STARTED=0  # stop only the MPS daemon this script started, also when it is interrupted
mps_start() {
    if command -v nvidia-cuda-mps-control >/dev/null 2>&1 && nvidia-cuda-mps-control -d; then
        MPS_STARTED=1 && echo "CUDA MPS started"
    else
        echo "CUDA MPS not started by this script (not installed, or a daemon already runs)"
    fi
}
mps_stop() {
    if [[ $MPS_STARTED == 1 ]]; then echo quit | nvidia-cuda-mps-control; MPS_STARTED=0; fi
}
trap mps_stop EXIT

echo "== 1. one process: batched step against each run's own CUDA-graph step in turn"
timeout 300 "$PY" benchmarks/grouped_step.py --data-root "$DATA" --device cuda --counts 1 4 16 64 --steps 20
echo "grouped_step.py: exit $? (124: stopped after 300 s)"

grid() {  # grid NAME RUNS FLAGS...: a grid of RUNS runs (RUNS/2 paired seeds × plain ε and Min-SNR-5), timed
    local name=$1 runs=$2
    shift 2
    if (( runs < 2 || runs % 2 )); then echo "$name: a grid needs an even number of runs ≥ 2, got $runs"; return; fi
    # The runner skips finished runs: a folder from an earlier call would time nothing.
    if [[ -e "$OUT/$name" ]]; then echo "$name: $OUT/$name exists; use a new OUT_DIR"; return; fi
    local seeds
    seeds=$(seq -s ' ' 0 $((runs / 2 - 1)))
    local started=$SECONDS
    # shellcheck disable=SC2086
    "${EXPERIMENT[@]}" --dataset mnist --data-root "$DATA" --targets eps --weightings min_snr --seeds 0 \
        --paired-seeds $seeds --ablation-gammas --steps "$STEPS" --eval-every "$STEPS" --eval-samples 100 \
        --device cuda --out "$OUT/$name" "$@" >"$OUT/$name.log" 2>&1
    echo "$name: exit $?, $((SECONDS - started)) s for $runs runs × $STEPS steps"
}

echo "== 2. whole grids: MPS workers against one batched step"
for count in ${COUNTS:-4 16}; do
    mps_start
    grid "workers-$count" "$count" --workers "$count"
    mps_stop
    grid "grouped-$count" "$count" --group-runs "$count"
done

if [[ "${GRID:-0}" == "1" ]]; then
    echo "== 3. docs/results.md section 1's 56 runs"
    SECTION1=(--dataset mnist --data-root "$DATA" --targets eps x0 v --weightings min_snr soft_min_snr p2
              --seeds 0 1 2 --paired-seeds 0 1 2 3 4 --lr-check 0.001 0.004 --ablation-gammas
              --steps 2000 --eval-every 250 --eval-samples 1000 --device cuda)
    mps_start
    started=$SECONDS
    for name in section1-workers section1-grouped; do
        [[ -e "$OUT/$name" ]] && { echo "$OUT/$name exists; use a new OUT_DIR"; exit 1; }
    done
    "${EXPERIMENT[@]}" "${SECTION1[@]}" --workers 14 --out "$OUT/section1-workers" >"$OUT/section1-workers.log" 2>&1
    echo "section 1, 14 MPS workers: exit $?, $((SECONDS - started)) s"
    mps_stop
    started=$SECONDS
    "${EXPERIMENT[@]}" "${SECTION1[@]}" --group-runs 14 --out "$OUT/section1-grouped" >"$OUT/section1-grouped.log" 2>&1
    echo "section 1, --group-runs 14: exit $?, $((SECONDS - started)) s"
fi
echo "== done after $SECONDS s"
