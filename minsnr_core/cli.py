"""Command-line tools: ``minsnr-train`` and ``minsnr-sample``. Both are thin consumers of the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from .checkpoint import CheckpointError, load_checkpoint
from .data import DataUnavailableError, dataset_names
from .images import to_uint8
from .models import MODEL_PRESETS
from .recorder import RunRecorder
from .sampling import SAMPLERS, balanced_labels, sample
from .schedules import SCHEDULES
from .training import TrainConfig, check_sampling_guidance, load_run_model, resolve_device, sample_clip, train
from .weighting import STRATEGIES, TARGETS, strategy_parameters


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minsnr-train", description="Train a diffusion model with a chosen loss weighting.")
    parser.add_argument("--dataset", choices=dataset_names(), default="mnist")
    parser.add_argument("--data-root", default=None, help="folder that holds (or will receive) the dataset")
    parser.add_argument("--no-download", action="store_true", help="never try to download the dataset")
    parser.add_argument("--schedule", choices=SCHEDULES.names(), default="cosine")
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--zero-terminal-snr", action="store_true")
    parser.add_argument("--weighting", choices=STRATEGIES.names(), default="min_snr")
    for name, param in strategy_parameters().items():
        users = [e.name for e in STRATEGIES if any(p.name == name for p in e.params)]
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=None,
                            help=f"{param.description} for {', '.join(users)} (default {param.default:g})")
    parser.add_argument("--target", choices=TARGETS, default=None, help="default: eps for the toys, x0 for images")
    parser.add_argument("--model", choices=MODEL_PRESETS.names(), default=None, help="default: by dataset")
    parser.add_argument("--unconditional", action="store_true",
                        help="ignore the class labels (default: class-conditional on mnist, cifar10 and folder)")
    parser.add_argument("--label-dropout", type=float, default=TrainConfig.label_dropout,
                        help="share of each batch trained without its label, for classifier-free guidance")
    parser.add_argument("--guidance", type=float, default=TrainConfig.guidance,
                        help="classifier-free guidance scale of the previews and the metric (1: none)")
    parser.add_argument("--sample-eta", type=float, default=TrainConfig.sample_eta,
                        help="DDIM η of the previews and the metric, and minsnr-sample's default (0: deterministic)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--steps", type=int, default=None, help="total steps (default 2000 unless --minutes)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    parser.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay)
    parser.add_argument("--preview-every", type=int, default=TrainConfig.preview_every)
    parser.add_argument("--metric-every", type=int, default=0, help="evaluate sample quality every N steps (0: off)")
    parser.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (slower start)")
    parser.add_argument("--out", required=True, help="run folder: metrics.jsonl, samples.png, checkpoint.pt")
    parser.add_argument("--resume", default=None, help="run folder or checkpoint to continue from")
    return parser


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    params = {name: getattr(args, name) for name in strategy_parameters() if getattr(args, name) is not None}
    if args.resume:
        saved = TrainConfig.from_dict(load_checkpoint(args.resume)["config"])
        saved.steps, saved.minutes = args.steps, args.minutes
        saved.out_dir, saved.device = args.out, args.device
        saved.data_root = args.data_root or saved.data_root
        return saved
    return TrainConfig(
        dataset=args.dataset, data_root=args.data_root, download=not args.no_download, schedule=args.schedule,
        timesteps=args.timesteps, zero_terminal_snr=args.zero_terminal_snr, weighting=args.weighting,
        weighting_params=params, target=args.target, model=args.model, batch_size=args.batch_size, lr=args.lr,
        class_conditional=False if args.unconditional else None, label_dropout=args.label_dropout, guidance=args.guidance,
        sample_eta=args.sample_eta,
        steps=args.steps, minutes=args.minutes, seed=args.seed, device=args.device, ema_decay=args.ema_decay,
        preview_every=args.preview_every, metric_every=args.metric_every, checkpoint_every=args.checkpoint_every,
        out_dir=args.out, compile=args.compile,
    )


def train_main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    args = train_parser().parse_args(argv)
    try:
        config = _config_from_args(args).resolved()
        recorder = RunRecorder(args.out, append=bool(args.resume))
        bar = tqdm(total=config.steps, unit="step", dynamic_ncols=True)
        status = 0
        for event in train(config, resume=args.resume):
            recorder(event)
            if event.kind == "start":
                bar.n = event.step
                bar.write(event.message)
            elif event.kind == "log":
                bar.update(event.step - bar.n)
                bar.set_postfix(loss=f"{event.loss:.4f}", img_s=f"{event.images_per_sec:.0f}")
            elif event.kind == "metric":
                bar.write(f"step {event.step}: " + ", ".join(f"{k}={v:.4g}" for k, v in event.metric.items()))
            elif event.kind in ("done", "stopped", "error"):
                bar.update(event.step - bar.n)
                bar.close()
                print(event.message, file=sys.stderr if event.kind == "error" else sys.stdout)
                if event.kind == "error" and event.checkpoint:
                    print(f"last good checkpoint: {event.checkpoint}", file=sys.stderr)
                status = 1 if event.kind == "error" else 0
        if status == 0:
            print(f"run folder: {Path(args.out).resolve()}")
        return status
    except (ValueError, DataUnavailableError, CheckpointError) as error:
        print(f"minsnr-train: error: {error}", file=sys.stderr)
        return 2


def sample_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minsnr-sample", description="Draw samples from a trained run's EMA model.")
    parser.add_argument("--run", required=True, help="run folder (or checkpoint file)")
    parser.add_argument("--n", type=int, default=64, help="number of samples")
    parser.add_argument("--sampler", choices=list(SAMPLERS), default="ddim")
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--eta", type=float, default=None,
                        help="DDIM stochasticity, 0 (deterministic) to 1 (default: the run's --sample-eta)")
    parser.add_argument("--label", type=int, default=None,
                        help="class-conditional runs: draw only this class (default: every class equally often)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance scale (default: the run's; 1 = the plain conditional model)")
    parser.add_argument("--unconditional", action="store_true",
                        help="class-conditional runs: sample without labels (the model's unconditional mode)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=250, help="samples per forward batch")
    parser.add_argument("--out", required=True, help="output .npy: uint8 (N, H, W) or (N, H, W, C); float32 (N, 2) for toys")
    return parser


def sample_main(argv: list[str] | None = None) -> int:
    args = sample_parser().parse_args(argv)
    try:
        if args.n < 1:
            raise ValueError(f"--n must be ≥ 1, got {args.n}")
        if args.batch < 1:
            raise ValueError(f"--batch must be ≥ 1, got {args.batch}")
        model, diffusion, config, shape = load_run_model(args.run, args.device)
        device = resolve_device(args.device)
        generator = torch.Generator(device=device).manual_seed(args.seed)
        kwargs = {"eta": config.sample_eta if args.eta is None else args.eta} if args.sampler == "ddim" else {}
        if args.label is not None and args.unconditional:
            raise ValueError("--label and --unconditional exclude each other")
        labels = None if args.unconditional else balanced_labels(args.n, model.num_classes)
        if args.label is not None:
            if not model.num_classes:
                raise ValueError("--label: this run was trained without class labels")
            if not 0 <= args.label < model.num_classes:
                raise ValueError(f"--label must be in [0, {model.num_classes - 1}], got {args.label}")
            labels = torch.full((args.n,), args.label)
        guidance = config.guidance if args.guidance is None else args.guidance
        check_sampling_guidance(config, guidance, args.unconditional)
        samples, _ = sample(model, diffusion, (args.n, *shape), args.sampler, args.sample_steps, batch=args.batch,
                            labels=labels, generator=generator, device=device, clip=sample_clip(shape),
                            guidance=guidance, **kwargs)
        samples = samples.cpu()
        array = to_uint8(samples) if samples.dim() == 4 else samples.numpy().astype(np.float32)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, array)
        print(f"wrote {args.out}: {array.shape} {array.dtype}")
        return 0
    except (ValueError, CheckpointError) as error:
        print(f"minsnr-sample: error: {error}", file=sys.stderr)
        return 2


def _exit(code: int) -> None:
    raise SystemExit(code)


def train_entry() -> None:
    _exit(train_main())


def sample_entry() -> None:
    _exit(sample_main())


def experiment_parser() -> argparse.ArgumentParser:
    from .experiment import ExperimentSpec

    d = ExperimentSpec()
    parser = argparse.ArgumentParser(prog="minsnr-experiment",
                                     description="Train a grid of weightings × targets × seeds (+ a Min-SNR γ ablation), "
                                                 "evaluate sample quality, write results.csv, figures and summary.md.")
    parser.add_argument("--dataset", choices=dataset_names(), default=d.dataset)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--weightings", nargs="+", choices=STRATEGIES.names(), default=d.weightings)
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=d.targets)
    parser.add_argument("--gamma", type=float, default=d.gamma, help="γ of Min-SNR and Soft-Min-SNR in the comparison")
    parser.add_argument("--ablation-gammas", nargs="*", type=float, default=d.ablation_gammas)
    parser.add_argument("--ablation-target", choices=TARGETS, default=d.ablation_target)
    parser.add_argument("--seeds", nargs="+", type=int, default=d.seeds)
    parser.add_argument("--paired-seeds", nargs="+", type=int, default=None,
                        help="seeds for each target's plain loss and Min-SNR-γ, the key pair (default: --seeds)")
    parser.add_argument("--lr-check", nargs="*", type=float, default=d.lr_check,
                        help="learning rates at which the plain loss and Min-SNR-γ of --lr-check-target also run")
    parser.add_argument("--lr-check-target", choices=TARGETS, default=d.lr_check_target)
    parser.add_argument("--lr-check-seeds", nargs="+", type=int, default=d.lr_check_seeds)
    parser.add_argument("--steps", type=int, default=d.steps, help="training steps per run")
    parser.add_argument("--eval-every", type=int, default=d.eval_every)
    parser.add_argument("--eval-samples", type=int, default=d.eval_samples)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--model", choices=MODEL_PRESETS.names(), default=None, help="model preset (default: the dataset's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1,
                        help="runs trained at once in separate processes (worth it on a GPU; default 1)")
    parser.add_argument("--metric", default=None, help="metric for figures and speed-ups (default: fd, or swd for toys)")
    parser.add_argument("--quick", action="store_true", help="a minute-long grid for CI (overrides the grid flags)")
    parser.add_argument("--out", required=True, help="results folder (resumable: finished runs are skipped)")
    return parser


def experiment_main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from .experiment import ExperimentSpec, quick_spec, run_experiment
    from .metrics import CLASSIFIERS, real_data_floor
    from .report import write_report

    args = experiment_parser().parse_args(argv)
    if args.quick:
        spec = quick_spec(args.dataset, args.data_root)
    else:
        spec = ExperimentSpec(dataset=args.dataset, data_root=args.data_root, weightings=args.weightings,
                              targets=args.targets, gamma=args.gamma, ablation_gammas=args.ablation_gammas,
                              ablation_target=args.ablation_target, seeds=args.seeds, paired_seeds=args.paired_seeds,
                              lr_check=args.lr_check, lr_check_target=args.lr_check_target,
                              lr_check_seeds=args.lr_check_seeds, steps=args.steps,
                              eval_every=args.eval_every, eval_samples=args.eval_samples, batch_size=args.batch_size,
                              model=args.model, device=args.device)
    spec.device = args.device
    try:
        bar = tqdm(total=len(spec.runs()), unit="run", dynamic_ncols=True)

        def progress(index: int, total: int, run: dict, done: bool) -> None:
            bar.n = index
            bar.set_postfix_str(("skip " if done else "") + run.get("key", "finished"))
            bar.refresh()

        rows = run_experiment(spec, args.out, progress, args.workers)
        bar.close()
        floor = None
        if spec.dataset in CLASSIFIERS and spec.data_root:
            floor = real_data_floor(spec.dataset, spec.data_root, spec.eval_samples)
        summary = write_report(rows, args.out, args.metric, floor)
        print(f"{len(rows)} rows in {Path(args.out) / 'results.csv'}; summary in {summary}")
        return 0
    except (ValueError, DataUnavailableError, RuntimeError) as error:
        print(f"minsnr-experiment: error: {error}", file=sys.stderr)
        return 2


def experiment_entry() -> None:
    _exit(experiment_main())
