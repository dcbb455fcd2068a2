#!/usr/bin/env bash
# The MNIST quality target measured through the CLI, exactly as a user runs it (run by hand):
#
#     bash benchmarks/mnist_cli.sh DATA_ROOT MINUTES RUNS [extra minsnr-train flags]
#
# RUNS times in a row: minsnr-train --dataset mnist --minutes MINUTES --seed 0 (previews and checkpoints included),
# minsnr-sample --n 1000 --sampler ddim --sample-steps 50 --seed 0, then benchmarks/score_samples.py (the shares
# recognised, the Fréchet distance and the real-data floor at 1000 samples).
set -eu
DATA=${1:?data root}; MINUTES=${2:?minutes}; RUNS=${3:?runs}; shift 3
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
for i in $(seq "$RUNS"); do
    started=$SECONDS
    "$PY" -c "from minsnr_core.cli import train_entry; train_entry()" --dataset mnist --data-root "$DATA" \
        --minutes "$MINUTES" --seed 0 --out "$WORK/run$i" "$@" 2>/dev/null | grep -E "finished|stopped|error"
    echo "run $i: minsnr-train returned after $((SECONDS - started)) s; $(grep '"done"' "$WORK/run$i/metrics.jsonl")"
    "$PY" -c "from minsnr_core.cli import sample_entry; sample_entry()" --run "$WORK/run$i" --n 1000 --sampler ddim \
        --sample-steps 50 --seed 0 --out "$WORK/s$i.npy" >/dev/null
    "$PY" "$(dirname "$0")/score_samples.py" "$WORK/s$i.npy" --dataset mnist --data-root "$DATA" --conditional --no-floor
done
"$PY" "$(dirname "$0")/score_samples.py" "$WORK/s1.npy" --dataset mnist --data-root "$DATA" | grep "real training"
rm -rf "$WORK"
