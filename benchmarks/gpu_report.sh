#!/usr/bin/env bash
# The speed and quality numbers of docs/performance.md, in one go (run by hand):
#
#     bash benchmarks/gpu_report.sh DATA_ROOT OUT_DIR
#
# CPU part (every machine): training throughput of every preset beside the diffusers reference UNet, batch 64.
# GPU part (when CUDA is present; otherwise it says it was skipped):
#   1. throughput at batch 128 and 512 (each step replayed as a CUDA graph, as train() does on CUDA),
#   2. time to recognisable MNIST digits with the CLI's class-conditional defaults: a MNIST_MINUTES budget (default
#      0.3333), 1000 DDIM-50 samples scored every 1000 steps, the scoring time not counted as training; then the
#      issue's commands (minsnr-train --minutes 0.3333, minsnr-sample, scored) three times in a row,
#   3. CIFAR-10 for CIFAR_MINUTES (default 5) with the `cifar` preset through minsnr-train, then 1000 samples from
#      minsnr-sample, scored and drawn as a grid (OUT_DIR/cifar-samples.png).
# PARTS (default "cpu gpu") picks the parts, e.g. PARTS=gpu on a GPU machine whose CPU numbers are not wanted.
set -u
DATA=${1:?data root (holds MNIST/ and CIFAR-10)}
OUT=${2:?output folder}
PY=${PYTHON:-python3}
PARTS=${PARTS:-cpu gpu}
mkdir -p "$OUT"
"$PY" -c "import torch; print('torch', torch.__version__)"

if [[ " $PARTS " == *" cpu "* ]]; then
    echo "== CPU: throughput (images/s, batch 64)"
    "$PY" benchmarks/throughput.py --device cpu --batch-size 64 --steps 5
fi
[[ " $PARTS " == *" gpu "* ]] || exit 0
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "== GPU part skipped: no CUDA device here (torch.cuda.is_available() is False)"
    exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print(torch.cuda.get_device_name())"

for batch in 128 512; do
    echo "== GPU: throughput (images/s, batch $batch)"
    timeout 120 "$PY" benchmarks/throughput.py --device cuda --batch-size "$batch" --steps 200
done

echo "== GPU: time to recognisable digits (CLI defaults, 1000 DDIM-50 samples scored every 1000 steps)"
timeout 240 "$PY" benchmarks/mnist_quality.py --minutes "${MNIST_MINUTES:-0.3333}" --track-every 1000 --samples 1000 \
    --eta 1 --data-root "$DATA" --device cuda --out "$OUT/mnist"
echo "== GPU: the issue's commands, 20 s of training, three runs"
timeout 300 bash benchmarks/mnist_cli.sh "$DATA" 0.3333 3

echo "== GPU: CIFAR-10, ${CIFAR_MINUTES:-5} minutes, cifar preset (minsnr-train's defaults otherwise)"
TRAIN=("$PY" -c "from minsnr_core.cli import train_entry; train_entry()")
SAMPLE=("$PY" -c "from minsnr_core.cli import sample_entry; sample_entry()")
started=$SECONDS
"${TRAIN[@]}" --dataset cifar10 --data-root "$DATA" --no-download --model cifar --minutes "${CIFAR_MINUTES:-5}" \
    --device cuda --out "$OUT/cifar" --overwrite >"$OUT/cifar-train.log" 2>&1
echo "minsnr-train returned $? after $((SECONDS - started)) s"
grep -a -E '^step|finished|error' "$OUT/cifar-train.log" | tail -n 12
"${SAMPLE[@]}" --run "$OUT/cifar" --n 1000 --seed 0 --device cuda --out "$OUT/cifar-samples.npy"
"$PY" benchmarks/score_samples.py "$OUT/cifar-samples.npy" --dataset cifar10 --data-root "$DATA" --conditional \
    --grid "$OUT/cifar-samples.png"
echo "== done after $SECONDS s"
