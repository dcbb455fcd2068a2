"""``minsnr-weights``: golden per-timestep weight tables, and a check of a file of weights against the registry.

    minsnr-weights table --schedule cosine --timesteps 1000 --target v --strategy min_snr --gamma 5 --format csv
    minsnr-weights check my_weights.csv --schedule cosine --timesteps 1000 --target v
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import _add_parameter_flags, _exit
from .schedules import SCHEDULES, get_schedule
from .weight_tables import MAX_CHARACTERS, check_weights, read_weights_csv, table_csv, table_json, weight_table
from .weighting import STRATEGIES, TARGETS


def _schedule_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schedule", choices=SCHEDULES.names(), default="cosine", help="noise schedule (default cosine)")
    parser.add_argument("--timesteps", type=int, default=1000, help="number of timesteps T (default 1000)")
    parser.add_argument("--zero-terminal-snr", action="store_true", help="rescale the schedule to SNR = 0 at t = T")
    parser.add_argument("--shift", type=float, default=1.0, help="resolution shift α (SD3; default 1: none)")
    parser.add_argument("--target", choices=TARGETS, default="eps", help="the loss the weights multiply (default eps)")


def weights_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minsnr-weights", description="Per-timestep loss weights: golden tables to "
                                     "test a port against, and a check of a file of weights against every strategy.")
    commands = parser.add_subparsers(dest="command", required=True)
    table = commands.add_parser("table", help="write t, ᾱ_t, SNR, log-SNR and the weight per timestep")
    _schedule_flags(table)
    table.add_argument("--strategy", choices=STRATEGIES.names(), required=True, help="weighting strategy")
    _add_parameter_flags(table, STRATEGIES)
    table.add_argument("--format", choices=("csv", "json"), default="csv")
    table.add_argument("--out", default=None, help="file to write (default: standard output)")
    check = commands.add_parser("check", help="say which strategy a CSV of t,weight rows is, or where it departs")
    check.add_argument("file", help="CSV with a header naming the columns t and weight, one row per timestep")
    _schedule_flags(check)
    return parser


def weights_main(argv: list[str] | None = None) -> int:
    args = weights_parser().parse_args(argv)
    try:
        schedule = get_schedule(args.schedule, args.timesteps, zero_terminal_snr=args.zero_terminal_snr, shift=args.shift)
        if args.command == "table":
            entry = STRATEGIES.get(args.strategy)
            stray = [n for n in STRATEGIES.parameters() if getattr(args, n) is not None
                     and n not in {p.name for p in entry.params}]
            if stray:
                raise ValueError(f"--{stray[0].replace('_', '-')} is not a parameter of {args.strategy}; it takes "
                                 f"{', '.join('--' + p.name.replace('_', '-') for p in entry.params) or 'none'}")
            params = entry.resolve_params({p.name: getattr(args, p.name) for p in entry.params
                                           if getattr(args, p.name) is not None})
            table = weight_table(schedule, args.strategy, args.target, **params)
            about = {"schedule": args.schedule, "timesteps": args.timesteps, "zero_terminal_snr": args.zero_terminal_snr,
                     "shift": args.shift, "target": args.target, "strategy": args.strategy, "params": params}
            text = table_csv(table) if args.format == "csv" else table_json(table, about) + "\n"
            if args.out:
                Path(args.out).write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text)
            return 0
        path = Path(args.file)
        if not path.is_file():
            raise ValueError(f"file: {args.file!r} is not a readable file")
        if path.stat().st_size > MAX_CHARACTERS * 4:
            raise ValueError(f"file: {path.stat().st_size:,} bytes is too large for a table of at most 4,001 rows")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"file: {args.file!r} is not UTF-8 text (a CSV of t,weight rows)") from None
        report = check_weights(read_weights_csv(text, args.timesteps), schedule, args.target)
        print(report.words)
        return 0 if report.matches else 1
    except (ValueError, OSError) as error:
        print(f"minsnr-weights: error: {error}", file=sys.stderr)
        return 2


def weights_entry() -> None:
    _exit(weights_main())
