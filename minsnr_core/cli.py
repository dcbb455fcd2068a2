"""Command-line tools: ``minsnr-train`` and ``minsnr-sample``. Both are thin consumers of the library."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from .adaptive import ADAPTIVE_WEIGHTINGS
from .checkpoint import CHECKPOINT_NAME, CheckpointError, CheckpointSaveError, load_checkpoint
from .config import TrainConfig, continued_config, resume_differences, saved_config
from .data import DataUnavailableError
from .images import to_uint8
from .models import MODEL_PRESETS
from .recorder import METRICS_NAME, SAMPLES_NAME, RunRecorder
from .runs import load_run
from .sampling import SAMPLERS
from .settings import SETTINGS, TABLE, Setting, may_change_on_resume
from .timesteps import TIMESTEP_SAMPLERS
from .training import FINAL_KINDS, train
from .weighting import STRATEGIES, TARGETS


def _add_parameter_flags(parser: argparse.ArgumentParser, registry) -> None:
    """A ``--<name>`` flag for each parameter of a registry's entries (default None: the entry's own default)."""
    for name, param in registry.parameters().items():
        users = [e.name for e in registry if any(p.name == name for p in e.params)]
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=None,
                            help=f"{param.description} for {', '.join(users)} (default {param.default:g})")


APPLIES = {"image": "images", "points": "2D toys", "labelled": "datasets with labels"}


def setting_help(setting: Setting) -> str:
    """A setting's help text with what it allows, its default (or automatic rule) and, where it does not apply to
    every dataset, which ones, from its row of the table."""
    default = setting.auto_help or ("none" if setting.default is None else f"{setting.default}")
    only = "" if set(setting.applies) == {"image", "points"} else (
        f"; {' and '.join(APPLIES[kind] for kind in setting.applies)} only")
    if setting.kind is bool or setting.choices is not None:  # argparse lists the choices itself
        return f"{setting.help} (default: {default}{only})"
    return f"{setting.help}; {setting.allowed().removesuffix(' or None (automatic)')} (default: {default}{only})"


def add_setting_flags(parser: argparse.ArgumentParser, names: list[str] | None = None) -> None:
    """A flag for each setting of the table that has one (or for ``names``), each defaulting to None: a setting not
    given keeps the table's default, and the flags a user typed can be told apart. A switch gets ``--<name>`` and
    ``--no-<name>`` (or its own ``negative_flag``)."""
    for setting in TABLE:
        if setting.cli_flag is None or setting.kind is dict or (names is not None and setting.name not in names):
            continue
        kwargs: dict = {"dest": setting.name, "default": None, "help": setting_help(setting)}
        if setting.kind is bool and setting.negative_flag:
            parser.add_argument(setting.cli_flag, action="store_const", const=True, **kwargs)
            parser.add_argument(setting.negative_flag, action="store_const", const=False, dest=setting.name,
                                default=None, help=f"the same as {setting.cli_flag.replace('--', '--no-', 1)}")
        elif setting.kind is bool:
            parser.add_argument(setting.cli_flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            choices = setting._choices() if setting.choices is not None else None
            parser.add_argument(setting.cli_flag, type=setting.kind, choices=choices, **kwargs)


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minsnr-train", description="Train a diffusion model with a chosen loss weighting.")
    add_setting_flags(parser)
    for registry in (STRATEGIES, TIMESTEP_SAMPLERS, ADAPTIVE_WEIGHTINGS):
        _add_parameter_flags(parser, registry)
    parser.add_argument("--resume", default=None, help="run folder or checkpoint to continue from")
    parser.add_argument("--overwrite", action="store_true", help="replace a run that --out already holds")
    return parser


def _chosen_params(args: argparse.Namespace, registry, choice: str) -> dict[str, float]:
    """The parameters given for the entry chosen by ``--<choice>``; a parameter of another entry is refused."""
    entry = registry.get(getattr(args, choice) or SETTINGS[choice].default)
    own = [p.name for p in entry.params]
    stray = [name for name in registry.parameters() if getattr(args, name) is not None and name not in own]
    if stray:
        flag = choice.replace("_", "-")
        raise ValueError(f"--{stray[0].replace('_', '-')} is a parameter of another {registry.kind}; "
                         f"--{flag} {entry.name} takes {', '.join('--' + n.replace('_', '-') for n in own) or 'none'}")
    return {name: getattr(args, name) for name in own if getattr(args, name) is not None}


def _typed_settings(args: argparse.Namespace) -> dict[str, object]:
    """The table's settings whose flags were given (every flag defaults to None), by name."""
    return {s.name: getattr(args, s.name) for s in TABLE if getattr(args, s.name, None) is not None}


def _settings_from_args(args: argparse.Namespace) -> dict[str, object]:
    """The settings the flags give, by name (a flag left out is not there: the table's default holds), with the
    chosen entries' parameters."""
    given = _typed_settings(args)
    given["weighting_params"] = {n: getattr(args, n) for n in STRATEGIES.parameters() if getattr(args, n) is not None}
    given["timestep_params"] = _chosen_params(args, TIMESTEP_SAMPLERS, "timestep_sampling")
    given["adaptive_params"] = _chosen_params(args, ADAPTIVE_WEIGHTINGS, "adaptive_weighting")
    return given


def _resumed_config(args: argparse.Namespace) -> TrainConfig:
    """The checkpoint's config with what --resume may change; any other flag that differs from the run is refused
    (silently keeping the old value would train something else than the command says)."""
    state = load_checkpoint(args.resume)
    saved, done_steps = saved_config(state), int(state["step"])
    typed = _typed_settings(args)
    for setting in TABLE:  # a registry parameter typed alone keeps the run's others (of the same entry)
        if setting.kind is dict and setting.registry is not None:
            own = {n: getattr(args, n) for n in setting.registry.parameters() if getattr(args, n) is not None}
            same_entry = typed.get(setting.entry_setting, getattr(saved, setting.entry_setting)) == getattr(
                saved, setting.entry_setting)
            typed[setting.name] = {**getattr(saved, setting.name), **own} if same_entry else own
    may_change = may_change_on_resume()
    asked = dataclasses.replace(saved, **{n: v for n, v in typed.items() if n not in may_change})
    on_cpu = {"device": "cpu"}  # the automatic choices, to compare with, wherever the run was trained
    differ = resume_differences(dataclasses.replace(saved, **on_cpu).resolved(), dataclasses.replace(asked, **on_cpu).resolved())
    if differ:
        flags = sorted(SETTINGS[n].cli_flag for n in may_change if SETTINGS[n].cli_flag)
        raise ValueError("--resume continues the run as it was trained; these flags differ from it: " + "; ".join(
            f"--{name.replace('_', '-')} {after} (the run has {before})" for name, before, after in differ)
            + f". Only {', '.join(flags)} may change; start a new run (another --out) to change the others")
    changes = {name: value for name, value in typed.items() if name in may_change and name not in ("steps", "minutes")}
    changes = {"device": SETTINGS["device"].default, **changes, "data_root": typed.get("data_root") or saved.data_root}
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
        if args.out_dir is None:
            raise ValueError("--out is required: the run folder (metrics.jsonl, samples.png, checkpoint.pt)")
        out, resume = Path(args.out_dir), Path(args.resume) if args.resume else None
        continues = _check_out(out, resume, args.overwrite)
        config = (_resumed_config(args) if resume else TrainConfig(**_settings_from_args(args))).resolved()
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
            elif event.kind in FINAL_KINDS:
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
        print(f"minsnr-train: error: cannot write the run to {args.out_dir}: {error.strerror or error}", file=sys.stderr)
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


EXPERIMENT_SETTINGS = ["dataset", "data_root", "batch_size", "device"]


def experiment_parser() -> argparse.ArgumentParser:
    from .experiment import ExperimentSpec

    d = ExperimentSpec()
    parser = argparse.ArgumentParser(prog="minsnr-experiment",
                                     description="Train a grid of weightings × targets × seeds (+ a Min-SNR γ ablation), "
                                                 "evaluate sample quality, write results.csv, figures and summary.md.")
    add_setting_flags(parser, EXPERIMENT_SETTINGS)  # every run of the grid shares these
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
    parser.add_argument("--model", choices=MODEL_PRESETS.names(), default=None, help="model preset (default: the dataset's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="local backend: runs trained at once in separate processes (worth it on a GPU; default 1)")
    parser.add_argument("--group-runs", type=int, default=1,
                        help="local backend: runs trained together in one batched step (default 1: on a 2-core CPU "
                             "a batched step of 4 MNIST UNets measured no faster than their steps in turn; see "
                             "docs/performance.md)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: this machine (--workers processes); ray: each run a Ray task, on this machine or "
                             'a Ray cluster (needs pip install "minsnr[cluster]"; docs/cluster.md) (default: local)')
    parser.add_argument("--address", default=None,
                        help="--backend ray: the cluster to join, auto (the one this machine belongs to) or HOST:PORT "
                             "of its head (default: start Ray on this machine for the grid)")
    parser.add_argument("--gpus-per-run", type=float, default=None,
                        help="--backend ray: GPUs each run reserves; a fraction shares a GPU (e.g. 0.25: four runs per "
                             "GPU); 0 trains on CPUs (default: 0)")
    parser.add_argument("--cpus-per-run", type=int, default=None,
                        help="--backend ray: CPUs each run reserves, also its torch threads (default: 1)")
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

    from .cluster import backend_options
    from .experiment import ExperimentSpec, check_metric, grid_runs, quick_spec, record_machines, run_experiment
    from .metrics import CLASSIFIERS, real_data_floor
    from .report import write_report

    args = experiment_parser().parse_args(argv)
    shared = {name: getattr(args, name) for name in EXPERIMENT_SETTINGS if getattr(args, name) is not None}
    if args.quick:
        spec = quick_spec(shared.get("dataset", SETTINGS["dataset"].default), args.data_root)
    else:
        spec = ExperimentSpec(**shared, weightings=args.weightings,
                              targets=args.targets, gamma=args.gamma, ablation_gammas=args.ablation_gammas,
                              ablation_target=args.ablation_target, seeds=args.seeds, paired_seeds=args.paired_seeds,
                              lr_check=args.lr_check, lr_check_target=args.lr_check_target,
                              lr_check_seeds=args.lr_check_seeds, steps=args.steps,
                              eval_every=args.eval_every, eval_samples=args.eval_samples,
                              model=args.model, samplings=args.timestep_samplings,
                              adaptives=args.adaptive_weightings)
    spec.device = args.device or SETTINGS["device"].default
    bar = None
    try:
        ray_options = backend_options(args.backend, args.address, args.gpus_per_run, args.cpus_per_run, args.workers,
                                      spec.device)
        check_metric(spec.dataset, args.metric)  # the whole grid and the report's metric, before any training
        runs = grid_runs(spec, args.backend)
        bar = tqdm(total=len(runs), unit="run", dynamic_ncols=True)

        def progress(index: int, total: int, run: dict, done: bool) -> None:
            bar.n = index
            bar.set_postfix_str(("skip " if done else "") + run.get("key", "finished"))
            bar.refresh()

        rows = run_experiment(spec, args.out, progress, 1 if args.workers is None else args.workers,
                              backend=args.backend, ray_options=ray_options, group_runs=args.group_runs)
        bar.close()
        floor = None
        if spec.dataset in CLASSIFIERS and CLASSIFIERS[spec.dataset].floor and spec.data_root:
            floor = real_data_floor(spec.dataset, spec.data_root, spec.eval_samples)
        machines = record_machines(Path(args.out), [run["key"] for run in runs])
        summary = write_report(rows, args.out, args.metric, floor, machines)
        print(f"{len(rows)} rows in {Path(args.out) / 'results.csv'}; summary in {summary}")
        return 0
    except (ValueError, DataUnavailableError, RuntimeError) as error:
        if bar is not None:
            bar.close()  # the bar's last state on its own line, then the error
        print(f"minsnr-experiment: error: {error}", file=sys.stderr)
        return 2


def experiment_entry() -> None:
    _exit(experiment_main())
