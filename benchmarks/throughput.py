"""Training throughput (images/s) of each model preset, side by side with the Hugging Face course's MNIST UNet.

    pip install -e ".[bench]"       # diffusers, for the reference model
    python benchmarks/throughput.py [--device auto] [--batch-size 128] [--steps 10]
    python benchmarks/throughput.py --device cuda --presets mnist --compile none default reduce-overhead
    python benchmarks/throughput.py --device cuda --no-cuda-graph     # eager steps on CUDA

Each model runs the step ``train()`` runs (``minsnr_core.steps.stepper``: forward, weighted loss, backward,
gradient clipping, AdamW, EMA; on CUDA replayed as one CUDA graph unless ``--no-cuda-graph`` or a ``--compile``
mode), on batches from ``draw_batch`` of random data of its dataset's shape; the first steps (and the graph's
capture) are warm-up and not timed.
"""

from __future__ import annotations

import argparse
import time

import torch

from minsnr_core.config import TrainConfig, resolve_device
from minsnr_core.models import MODEL_PRESETS, build_model, count_parameters
from minsnr_core.steps import draw_batch, prepare_run, stepper

SHAPES = {"mnist": (1, 28, 28), "mnist-small": (1, 28, 28), "mnist-large": (1, 28, 28), "cifar": (3, 32, 32),
          "cifar-large": (3, 32, 32), "vit-mnist": (1, 28, 28), "vit-cifar": (3, 32, 32), "vit-large": (3, 32, 32),
          "toy-mlp": (2,)}


class DiffusersUNet(torch.nn.Module):
    """The HF diffusion course's MNIST model: UNet2DModel, block_out_channels (32, 64, 64), 2 layers per block,
    attention in the two lower blocks (1.7M parameters)."""

    def __init__(self) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        self.net = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, layers_per_block=2,
                               block_out_channels=(32, 64, 64),
                               down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                               up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t).sample


def images_per_second(preset: str, model: torch.nn.Module, shape: tuple[int, ...], batch: int, steps: int,
                      device: str, compile_mode: str = "none", cuda_graph: bool = True) -> float:
    """Time the run's step (its batches from ``draw_batch``) of a Min-SNR-5 ε run on random data of ``shape``;
    ``compile_mode`` other than "none": the forward pass through ``torch.compile`` in that mode, eager steps (the
    warm-up steps, which compile, are timed and printed)."""
    dataset = "moons" if shape == (2,) else "mnist" if shape[0] == 1 else "cifar10"
    config = TrainConfig(dataset=dataset, model=preset, batch_size=batch, target="eps", steps=steps,
                         class_conditional=False, device=device,
                         cuda_graph=cuda_graph and compile_mode == "none").resolved()
    run = prepare_run(config, data=torch.randn(4 * batch, *shape), model=model)
    if compile_mode != "none":
        run.forward = torch.compile(model, mode=None if compile_mode == "default" else compile_mode)
    step = stepper(run)
    warmup = 5  # the CUDA graph's three eager steps and its capture included
    started = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            if run.device.type == "cuda":
                torch.cuda.synchronize()
            if compile_mode != "none":
                print(f"  compile ({compile_mode}) and {warmup} warm-up steps: {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
        step(draw_batch(run), config.lr, False)
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--presets", nargs="*", default=None, help="only these model presets (default: all)")
    parser.add_argument("--compile", nargs="+", default=["none"],
                        choices=["none", "default", "reduce-overhead", "max-autotune-no-cudagraphs"],
                        help="time each preset eagerly (none) and/or with torch.compile in these modes")
    parser.add_argument("--no-cuda-graph", action="store_true", help="on CUDA, time eager steps")
    parser.add_argument("--no-reference", action="store_true", help="skip the diffusers model")
    args = parser.parse_args()
    device = resolve_device(args.device)
    steps = "eager steps" if device.type != "cuda" or args.no_cuda_graph else "steps replayed as CUDA graphs"
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"{steps} (with --compile modes: eager)")
    reference = None
    try:
        if args.no_reference:
            raise ImportError
        model, label = DiffusersUNet(), "diffusers UNet2DModel (HF course)"
        try:
            reference = images_per_second("mnist", model, (1, 28, 28), args.batch_size, args.steps, args.device,
                                          cuda_graph=not args.no_cuda_graph)
        except RuntimeError as error:  # a model that syncs with the CPU cannot be captured: time it eagerly
            print(f"{label}: no CUDA graph ({str(error).splitlines()[0][:100]}); eager steps")
            model, label = DiffusersUNet(), label + ", eager"
            reference = images_per_second("mnist", model, (1, 28, 28), args.batch_size, args.steps, args.device,
                                          cuda_graph=False)
        print(f"{label:36s} {count_parameters(model):>10,} params {reference:>9.0f} img/s   1.0×")
    except ImportError:
        print("diffusers not installed: pip install -e '.[bench]' for the reference model")
    for entry in MODEL_PRESETS:
        if args.presets is not None and entry.name not in args.presets:
            continue
        shape = SHAPES[entry.name]
        for mode in args.compile:
            model = build_model(entry.name, shape[0], image_size=shape[1:] or None)
            rate = images_per_second(entry.name, model, shape, args.batch_size * (4 if len(shape) == 1 else 1),
                                     args.steps, args.device, mode, not args.no_cuda_graph)
            ratio = f"{rate / reference:5.1f}×" if reference and shape == (1, 28, 28) else ""
            label = f"{entry.display_name} [{entry.name}]" + ("" if mode == "none" else f" compiled ({mode})")
            print(f"{label:36s} {count_parameters(model):>10,} params {rate:>9.0f} img/s {ratio}", flush=True)


if __name__ == "__main__":
    main()
