#!/usr/bin/env bash
# The GPU numbers of the README and docs/results.md, in one go (run by hand on a machine with CUDA):
#
#     bash benchmarks/gpu_report.sh DATA_ROOT OUT_DIR [SECONDS]
#
# 1. training throughput of every preset beside the diffusers reference UNet (benchmarks/throughput.py),
# 2. time to recognisable MNIST digits with the CLI's defaults (quality tracked while training),
# 3. the MNIST comparison grid of docs/results.md with a larger budget, several runs at once on the one GPU,
# 4. a CIFAR-10 grid, if time is left. Each part is bounded so the whole stays within SECONDS (default 540);
#    the grids are resumable, so running the script again finishes what a time limit cut short.
set -u
DATA=${1:?data root (holds MNIST/ and CIFAR-10)}
OUT=${2:?output folder}
BUDGET=${3:-540}
PY=${PYTHON:-python3}
EXPERIMENT=("$PY" -c "from minsnr_core.cli import experiment_entry; experiment_entry()")
mkdir -p "$OUT"
left() { echo $((BUDGET - SECONDS)); }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

echo "== throughput (images/s, batch 128)"
timeout 90 "$PY" benchmarks/throughput.py --device cuda --batch-size 128 --steps 50

echo "== time to recognisable digits (CLI defaults, 1000 DDIM-50 samples scored every 1000 steps)"
timeout 150 "$PY" benchmarks/mnist_quality.py --minutes 1.5 --track-every 1000 --data-root "$DATA" --device cuda \
    --out "$OUT/quality"

echo "== MNIST grid, 2000 steps per run, 8 runs at once ($(left) s left)"
timeout $(($(left) - 60)) "${EXPERIMENT[@]}" --data-root "$DATA" --targets eps x0 --steps 2000 --eval-every 400 \
    --eval-samples 500 --workers 8 --device cuda --out "$OUT/mnist-grid"

if [ "$(left)" -gt 90 ]; then
    echo "== CIFAR-10 grid, 1000 steps per run ($(left) s left)"
    timeout $(($(left) - 20)) "${EXPERIMENT[@]}" --dataset cifar10 --data-root "$DATA" --weightings constant snr min_snr \
        --targets eps x0 --ablation-gammas --seeds 0 1 --steps 1000 --eval-every 250 --eval-samples 500 --workers 8 \
        --device cuda --out "$OUT/cifar-grid"
fi
echo "== done after $SECONDS s"
