"""Command-line tools: ``minsnr-train`` and ``minsnr-sample``. Both are thin consumers of the library."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from .adaptive import ADAPTIVE_WEIGHTINGS
from .checkpoint import CHECKPOINT_NAME, CheckpointError, CheckpointSaveError, load_checkpoint
from .config import DEFAULT_BATCH, DEFAULT_LR, DEFAULT_MODELS, TrainConfig, continued_config, saved_config
from .data import DataUnavailableError, dataset_names
from .images import to_uint8
from .models import MODEL_PRESETS
from .recorder import METRICS_NAME, SAMPLES_NAME, RunRecorder
from .runs import load_run
from .sampling import SAMPLERS
from .schedules import SCHEDULES
from .timesteps import TIMESTEP_SAMPLERS, sampler_parameters
from .training import train
from .weighting import STRATEGIES, TARGETS, strategy_parameters


def _add_parameter_flags(parser: argparse.ArgumentParser, registry) -> None:
    """A ``--<name>`` flag for each parameter of a registry's entries (default None: the entry's own default)."""
    for name, param in registry.parameters().items():
        users = [e.name for e in registry if any(p.name == name for p in e.params)]
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=None,
                            help=f"{param.description} for {', '.join(users)} (default {param.default:g})")


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minsnr-train", description="Train a diffusion model with a chosen loss weighting.")
    parser.add_argument("--dataset", choices=dataset_names(), default="mnist")
    parser.add_argument("--data-root", default=None, help="folder that holds (or will receive) the dataset")
    parser.add_argument("--no-download", action="store_true", help="never try to download the dataset")
    parser.add_argument("--schedule", choices=SCHEDULES.names(), default="cosine")
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--zero-terminal-snr", action="store_true")
    parser.add_argument("--weighting", choices=STRATEGIES.names(), default="min_snr")
    _add_parameter_flags(parser, STRATEGIES)
    parser.add_argument("--timestep-sampling", choices=TIMESTEP_SAMPLERS.names(), default="uniform",
                        help="how each batch draws its timesteps (default uniform)")
    _add_parameter_flags(parser, TIMESTEP_SAMPLERS)
    parser.add_argument("--adaptive-weighting", choices=ADAPTIVE_WEIGHTINGS.names(), default="none",
                        help="a factor on the weighting learned while training (default none)")
    _add_parameter_flags(parser, ADAPTIVE_WEIGHTINGS)
    parser.add_argument("--target", choices=TARGETS, default=None,
                        help="default: eps for the toys, x0 for images, v for rectified flow")
    parser.add_argument("--model", choices=MODEL_PRESETS.names(), default=None,
                        help="default: by dataset (" + ", ".join(f"{d}: {m}" for d, m in DEFAULT_MODELS.items())
                        + "; toys: toy-mlp)")
    parser.add_argument("--unconditional", action="store_true",
                        help="ignore the class labels (default: class-conditional on mnist, cifar10 and folder)")
    parser.add_argument("--label-dropout", type=float, default=TrainConfig.label_dropout,
                        help="share of each batch trained without its label, for classifier-free guidance")
    parser.add_argument("--guidance", type=float, default=TrainConfig.guidance,
                        help="classifier-free guidance scale of the previews and the metric (1: none)")
    parser.add_argument("--sample-eta", type=float, default=TrainConfig.sample_eta,
                        help="DDIM η of the previews and the metric, and minsnr-sample's default (0: deterministic)")
    tuned = [e for e in MODEL_PRESETS if e.batch_size or e.lr]  # presets that carry their measured settings
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the model preset's (" + ", ".join(f"{e.name} {e.batch_size}" for e in tuned
                                                                         if e.batch_size)
                        + f"), else {DEFAULT_BATCH['image']} for images and {DEFAULT_BATCH['points']} for the toys")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: the model preset's, " + ", ".join(f"{e.name} {e.lr:g}" for e in tuned
                                                                                        if e.lr)
                        + f"; else {DEFAULT_LR:g})")
    parser.add_argument("--steps", type=int, default=None,
                        help="total steps (default 2000 unless --minutes; with --resume: the run's budget again)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    parser.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay)
    parser.add_argument("--preview-every", type=int, default=None, help="default: 100 for the toys, 200 for images")
    parser.add_argument("--metric-every", type=int, default=0, help="evaluate sample quality every N steps (0: off)")
    parser.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model: a slower start. On CUDA only for eager steps (--no-cuda-graph, "
                             "or an adaptive sampler or weighting): there with CUDA graphs, 3.5× the steps/s measured")
    parser.add_argument("--no-cuda-graph", action="store_true",
                        help="on CUDA, launch each step's kernels one by one instead of replaying the step as one "
                             "CUDA graph (about 10× the steps/s measured for the MNIST presets)")
    parser.add_argument("--out", required=True, help="run folder: metrics.jsonl, samples.png, checkpoint.pt")
    parser.add_argument("--resume", default=None, help="run folder or checkpoint to continue from")
    parser.add_argument("--overwrite", action="store_true", help="replace a run that --out already holds")
    return parser


# What --resume may change: the budget, where it runs and reads data, and how often it reports.
RESUME_MAY_CHANGE = {"steps", "minutes", "device", "data_root", "no_download", "out", "resume", "overwrite",
                     "preview_every", "metric_every", "checkpoint_every", "no_cuda_graph"}


def _given_flags(argv: list[str] | None) -> dict[str, object]:
    """The flags the user actually typed, with their values (defaults left out)."""
    parser = train_parser()
    for action in parser._actions:
        action.default, action.required = argparse.SUPPRESS, False
    return vars(parser.parse_args(argv))


def _chosen_params(args: argparse.Namespace, registry, choice: str) -> dict[str, float]:
    """The parameters given for the entry chosen by ``--<choice>``; a parameter of another entry is refused."""
    entry = registry.get(getattr(args, choice))
    own = [p.name for p in entry.params]
    stray = [name for name in registry.parameters() if getattr(args, name) is not None and name not in own]
    if stray:
        flag = choice.replace("_", "-")
        raise ValueError(f"--{stray[0].replace('_', '-')} is a parameter of another {registry.kind}; "
                         f"--{flag} {entry.name} takes {', '.join('--' + n.replace('_', '-') for n in own) or 'none'}")
    return {name: getattr(args, name) for name in own if getattr(args, name) is not None}


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    params = {name: getattr(args, name) for name in strategy_parameters() if getattr(args, name) is not None}
    sampler_params = _chosen_params(args, TIMESTEP_SAMPLERS, "timestep_sampling")
    adaptive_params = _chosen_params(args, ADAPTIVE_WEIGHTINGS, "adaptive_weighting")
    return TrainConfig(
        dataset=args.dataset, data_root=args.data_root, download=not args.no_download, schedule=args.schedule,
        timesteps=args.timesteps, zero_terminal_snr=args.zero_terminal_snr, weighting=args.weighting,
        weighting_params=params, timestep_sampling=args.timestep_sampling, timestep_params=sampler_params,
        adaptive_weighting=args.adaptive_weighting, adaptive_params=adaptive_params,
        target=args.target, model=args.model, batch_size=args.batch_size, lr=args.lr,
        class_conditional=False if args.unconditional else None, label_dropout=args.label_dropout, guidance=args.guidance,
        sample_eta=args.sample_eta,
        steps=args.steps, minutes=args.minutes, seed=args.seed, device=args.device, ema_decay=args.ema_decay,
        preview_every=args.preview_every, metric_every=args.metric_every, checkpoint_every=args.checkpoint_every,
        out_dir=args.out, compile=args.compile, cuda_graph=not args.no_cuda_graph,
    )


def _resumed_config(args: argparse.Namespace, given: dict[str, object]) -> TrainConfig:
    """The checkpoint's config with what --resume may change; any other flag that differs from the run is refused
    (silently keeping the old value would train something else than the command says)."""
    state = load_checkpoint(args.resume)
    saved, done_steps = saved_config(state), int(state["step"])
    resolved = dataclasses.replace(saved, device="cpu").resolved()  # the automatic choices, to compare with
    differ = []
    for name, value in given.items():
        if name in RESUME_MAY_CHANGE:
            continue
        if name in strategy_parameters():
            before = resolved.weighting_params.get(name)
        elif name in sampler_parameters():
            before = resolved.timestep_params.get(name)
        elif name in ADAPTIVE_WEIGHTINGS.parameters():
            before = resolved.adaptive_params.get(name)
        elif name == "unconditional":
            value, before = True, not resolved.class_conditional
        else:
            before = getattr(resolved, name)
        if value != before:
            differ.append(f"--{name.replace('_', '-')} {value} (the run has {before})")
    if differ:
        raise ValueError("--resume continues the run as it was trained; these flags differ from it: "
                         + "; ".join(differ) + ". Only --steps, --minutes, --device, --data-root and the "
                         "--*-every intervals may change; start a new run (another --out) to change the others")
    changes = {"out_dir": args.out, "device": args.device, "data_root": args.data_root or saved.data_root}
    if "no_download" in given:
        changes["download"] = not args.no_download
    if "no_cuda_graph" in given:
        changes["cuda_graph"] = False
    changes.update({name: given[name] for name in ("preview_every", "metric_every", "checkpoint_every") if name in given})
    return continued_config(dataclasses.replace(saved, **changes), done_steps, args.steps, args.minutes,
                            session_start=int(state.get("session_start", 0)))


def _check_out(out: Path, resume: Path | None, overwrite: bool) -> bool:
    """Refuse to write a run where it would destroy another; True when the run continues in its own folder."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run")
    continues = resume is not None and (resume if resume.is_dir() else resume.parent).resolve() == out.resolve()
    holds_run = any((out / name).exists() for name in (CHECKPOINT_NAME, METRICS_NAME))
    if holds_run and not continues and not overwrite:
        raise ValueError(f"--out {out} already holds a run; continue it with --resume {out}, "
                         "or pass --overwrite to replace it")
    return continues


def train_main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    args = train_parser().parse_args(argv)
    try:
        out, resume = Path(args.out), Path(args.resume) if args.resume else None
        continues = _check_out(out, resume, args.overwrite)
        config = (_resumed_config(args, _given_flags(argv)) if resume else _config_from_args(args)).resolved()
        resume_step = int(load_checkpoint(resume)["step"]) if resume else None
        recorder, bar, status = None, None, 0
        for event in train(config, resume=resume):
            if recorder is None:  # the first event: data and config are valid, so the folder may be written now
                if args.overwrite and not continues:
                    for name in (CHECKPOINT_NAME, SAMPLES_NAME):
                        (out / name).unlink(missing_ok=True)
                recorder = RunRecorder(out, append=continues, resume_step=resume_step)
                if recorder.notice:
                    print(f"minsnr-train: {recorder.notice}", file=sys.stderr)
                bar = tqdm(total=config.steps, unit="step", dynamic_ncols=True)
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
            print(f"run folder: {out.resolve()}")
        return status
    except (ValueError, DataUnavailableError, CheckpointError, CheckpointSaveError) as error:
        print(f"minsnr-train: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder without write permission
        print(f"minsnr-train: error: cannot write the run to {args.out}: {error.strerror or error}", file=sys.stderr)
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
        # numpy adds .npy to a name without it: say the file's real name, and refuse a folder before sampling.
        out = Path(args.out if args.out.endswith(".npy") else args.out + ".npy")
        if Path(args.out).is_dir() or out.is_dir():
            raise ValueError(f"--out {args.out} is a folder; give a file name such as {Path(args.out) / 'samples.npy'}")
        run = load_run(args.run, args.device)
        try:
            samples, _ = run.sample(args.n, args.sampler, args.sample_steps, seed=args.seed, label=args.label,
                                    unconditional=args.unconditional, guidance=args.guidance, eta=args.eta,
                                    batch=args.batch)
        except ValueError as error:  # the same rules, said in terms of the flags
            raise ValueError(f"--{error}" if str(error).split(" ")[0] in ("label", "label:") else error) from None
        array = to_uint8(samples) if run.config.kind == "image" else samples.numpy().astype(np.float32)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, array)
        print(f"wrote {out}: {array.shape} {array.dtype}")
        return 0
    except (ValueError, CheckpointError) as error:
        print(f"minsnr-sample: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"minsnr-sample: error: cannot write {args.out}: {error.strerror or error}", file=sys.stderr)
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
    parser.add_argument("--timestep-samplings", nargs="*", choices=TIMESTEP_SAMPLERS.names(), default=[],
                        help="extra arms: the plain loss with these timestep samplers (paired seeds)")
    parser.add_argument("--adaptive-weightings", nargs="*", choices=ADAPTIVE_WEIGHTINGS.names(), default=[],
                        help="extra arms: the plain loss with these adaptive weightings (paired seeds)")
    parser.add_argument("--out", required=True, help="results folder (resumable: finished runs are skipped)")
    return parser


def experiment_main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from .experiment import ExperimentSpec, check_metric, quick_spec, run_experiment
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
                              model=args.model, device=args.device, samplings=args.timestep_samplings,
                              adaptives=args.adaptive_weightings)
    spec.device = args.device
    try:
        check_metric(spec.dataset, args.metric)  # the whole grid and the report's metric, before any training
        runs = spec.validate()
        bar = tqdm(total=len(runs), unit="run", dynamic_ncols=True)

        def progress(index: int, total: int, run: dict, done: bool) -> None:
            bar.n = index
            bar.set_postfix_str(("skip " if done else "") + run.get("key", "finished"))
            bar.refresh()

        rows = run_experiment(spec, args.out, progress, args.workers)
        bar.close()
        floor = None
        if spec.dataset in CLASSIFIERS and CLASSIFIERS[spec.dataset].floor and spec.data_root:
            floor = real_data_floor(spec.dataset, spec.data_root, spec.eval_samples)
        summary = write_report(rows, args.out, args.metric, floor)
        print(f"{len(rows)} rows in {Path(args.out) / 'results.csv'}; summary in {summary}")
        return 0
    except (ValueError, DataUnavailableError, RuntimeError) as error:
        print(f"minsnr-experiment: error: {error}", file=sys.stderr)
        return 2


def experiment_entry() -> None:
    _exit(experiment_main())
