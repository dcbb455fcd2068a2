"""Run by hand on a CUDA machine: two safeguards of the CUDA-graph step (``minsnr_core.cuda_graph.CudaGraphStep``).

    python benchmarks/cuda_graph_safeguards.py --data-root DATA [--steps 40]

1. A capture that fails falls back to eager steps: a host sync is forced inside the captured loss (CUDA forbids one
   while capturing); the run's losses must equal a plain eager run's from the same seed.
2. Two runs built, captured and replayed at once in two threads (the app's ``--max-jobs`` > 1): each run's losses
   must equal the same run's trained alone.

Prints both comparisons with the largest loss difference (0 where they agree). The third safeguard, switching to
the run's own device (``cuda:1`` and beyond), needs a second GPU.
"""

from __future__ import annotations

import argparse
import threading

import torch

from minsnr_core.config import TrainConfig
from minsnr_core.cuda_graph import CudaGraphStep
from minsnr_core.data import load_labels, load_mnist
from minsnr_core.steps import draw_batch, prepare_run, stepper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    data, labels = load_mnist(args.data_root), load_labels("mnist", args.data_root)

    def losses(seed: int, graph: bool, fail_capture: bool = False) -> tuple[list[float], object]:
        config = TrainConfig(dataset="mnist", data_root=args.data_root, device="cuda", steps=10**6, seed=seed,
                             cuda_graph=graph).resolved()
        run = prepare_run(config, data, labels)
        step = stepper(run)
        if fail_capture:
            real_loss = run.diffusion.loss

            def loss_with_a_sync(*inputs, **options):
                loss, per_sample = real_loss(*inputs, **options)
                if torch.cuda.is_current_stream_capturing():
                    float(loss.detach())  # a host sync: illegal while capturing, so the capture fails
                return loss, per_sample
            run.diffusion.loss = loss_with_a_sync
        return [float(step(draw_batch(run), config.lr, True)[0]) for _ in range(args.steps)], step

    def compare(name: str, first: list[float], second: list[float]) -> None:
        worst = max(abs(a - b) for a, b in zip(first, second, strict=True))
        print(f"    {name}: equal over {args.steps} steps: {first == second}; largest loss difference {worst:.3g}")

    eager, _ = losses(0, graph=False)
    failed, step = losses(0, graph=True, fail_capture=True)
    assert isinstance(step, CudaGraphStep)
    print(f"1. a failed capture: eager fallback {step.eager}, graph kept {step.graph is not None}")
    compare("its losses against a plain eager run", eager, failed)

    alone = {seed: losses(seed, graph=True)[0] for seed in (1, 2)}
    together: dict[int, list[float]] = {}
    errors: list[str] = []

    def train_in_a_thread(seed: int) -> None:
        try:
            together[seed] = losses(seed, graph=True)[0]
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(f"seed {seed}: {error!r}")

    threads = [threading.Thread(target=train_in_a_thread, args=(seed,)) for seed in alone]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"2. two graph runs at once in two threads: errors {errors or 'none'}")
    for seed in sorted(together):
        compare(f"seed {seed} against the same run alone", alone[seed], together[seed])
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {torch.cuda.device_count()} device(s)")


if __name__ == "__main__":
    main()
