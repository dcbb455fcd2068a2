"""The command-line tools run inside the test process: the same ``*_main`` functions the console scripts call, with
their output and exit code captured, without the 3–4 s of starting Python and importing torch for each call. The
tests that need a real process (a kill -9, one end-to-end run of each tool) start one."""

import contextlib
import io
import subprocess
import sys
import warnings
from types import SimpleNamespace

from minsnr_core import cli, weights_cli

MAINS = {"train": cli.train_main, "sample": cli.sample_main, "experiment": cli.experiment_main,
         "weights": weights_cli.weights_main}
ENTRY = {"train": "train_entry", "sample": "sample_entry", "experiment": "experiment_entry"}


def command(name, *args):
    """The tool ``name`` as a process: what its console script runs."""
    return [sys.executable, "-c", f"from minsnr_core.cli import {ENTRY[name]}; {ENTRY[name]}()", *map(str, args)]


def run_cli(name, *args, process=False):
    """Run the tool ``name`` (train, sample, experiment, weights) with ``args``; returns returncode, stdout and stderr. An
    exception the tool does not turn into a message escapes (in a process it would print a traceback)."""
    if process:
        return subprocess.run(command(name, *args), capture_output=True, text=True, timeout=600)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), warnings.catch_warnings():
        # Warnings print as a process would print them (pytest would otherwise collect them out of sight).
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)  # Python's own defaults outside __main__
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line))
        try:
            code = MAINS[name]([str(arg) for arg in args])
        except SystemExit as exit_:  # argparse's usage errors, as Python's exit status rules map them
            if exit_.code is None or isinstance(exit_.code, int):
                code = exit_.code or 0
            else:
                print(exit_.code, file=stderr)
                code = 1
    return SimpleNamespace(returncode=code, stdout=stdout.getvalue(), stderr=stderr.getvalue())
