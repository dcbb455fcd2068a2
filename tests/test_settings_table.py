"""One settings table (minsnr_core.settings): a setting added there alone reaches TrainConfig, the CLI and its
help, the resume check, the app's controls and the links; and the CLI and the app build the same run from the same
settings."""

import json
import subprocess
import sys

from app.settings import default_settings, make_config
from minsnr_core.cli import _settings_from_args, train_parser
from minsnr_core.config import TrainConfig
from minsnr_core.settings import SETTINGS, TABLE
from minsnr_core.training import train

from .conftest import ROOT

THROWAWAY = r'''
import json, sys
from minsnr_core.settings import Setting, register

register(Setting("test_margin", float, 1.0, "a throw-away setting", low=0.5, high=2.0, app=True, link=True))

from app import urlstate as us
from app.jobs import ClassLimits
from app.main import build_app, link_fields
from app.settings import default_settings, make_config, source_names
from minsnr_core.checkpoint import load_checkpoint
from minsnr_core.cli import train_main, train_parser

out, folder = sys.argv[1], sys.argv[2]
found = {"help": "--test-margin" in train_parser().format_help()}
base = ["--dataset", "moons", "--steps", "2", "--preview-every", "0"]
found["trained"] = train_main([*base, "--test-margin", "1.5", "--out", out])
found["saved"] = load_checkpoint(out)["config"]["test_margin"]
found["out_of_range"] = train_main([*base, "--test-margin", "3", "--out", out + "-bad"])
found["resumed_changed"] = train_main(["--resume", out, "--out", out, "--test-margin", "1.25"])
found["resumed_same"] = train_main(["--resume", out, "--out", out, "--test-margin", "1.5"])
import dataclasses
from minsnr_core.config import saved_config
from minsnr_core.training import train
changed = dataclasses.replace(saved_config(load_checkpoint(out)), test_margin=1.25, steps=8, out_dir=None)
try:
    found["library_resume"] = [e.message for e in train(changed, resume=out) if e.kind == "error"]
except Exception as error:
    found["library_resume"] = [str(error)]
demo = build_app([folder])
found["controls"] = sorted(b.elem_id for b in demo.blocks.values() if "test-margin" in (getattr(b, "elem_id", None) or ""))
settings = default_settings(data_root=next(iter(source_names([folder]))), dataset="moons", test_margin=1.75)
found["app_config"] = make_config({}, "min_snr", settings, [folder]).resolved().test_margin
fields = link_fields(ClassLimits())
values, notices = us.read_query(fields, {"train_test_margin": "1.25"})
found["link"] = values[[f.key for f in fields].index("train_test_margin")]
found["link_refusal"] = us.read_query(fields, {"train_test_margin": "9"})[1]
print("FOUND " + json.dumps(found))
'''


def test_a_setting_added_to_the_table_alone_reaches_the_cli_the_resume_check_the_app_and_the_links(tmp_path):
    result = subprocess.run([sys.executable, "-c", THROWAWAY, str(tmp_path / "run"), str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("FOUND ")]
    assert lines, result.stderr[-3000:]
    found = json.loads(lines[-1].removeprefix("FOUND "))
    assert found["help"] and found["trained"] == 0 and found["saved"] == 1.5
    assert found["out_of_range"] == 2 and "test_margin must be a number in [0.5, 2]; got 3.0" in result.stderr
    assert found["resumed_changed"] == 2 and "--test-margin 1.25 (the run has 1.5)" in result.stderr
    assert found["resumed_same"] == 0
    assert found["library_resume"] == ["cannot resume: checkpoint has test_margin=1.5, this run has 1.25"]
    assert found["controls"] == ["compare-test-margin", "train-test-margin"]
    assert found["app_config"] == 1.75
    assert found["link"] == 1.25 and "train_test_margin=9" in found["link_refusal"][0]


def test_every_field_of_train_config_is_a_row_of_the_table_and_is_checked_by_it():
    assert [f for f in TrainConfig.__dataclass_fields__] == [s.name for s in TABLE]
    assert TrainConfig().seed == SETTINGS["seed"].default and TrainConfig().dataset == SETTINGS["dataset"].default
    for setting in TABLE:
        if setting.kind in (int, float) and setting.low is not None:
            bad = setting.low - 1
            try:
                TrainConfig(dataset="moons", **{setting.name: bad}).resolved()
            except ValueError as error:
                assert str(error).startswith(setting.name), (setting.name, str(error))
            else:
                raise AssertionError(f"{setting.name}={bad} was accepted")


def test_the_cli_and_the_app_build_the_same_run_from_the_same_settings(tmp_path):
    flags = ["--dataset", "moons", "--schedule", "linear", "--timesteps", "500", "--weighting", "soft_min_snr", "--gamma",
             "2", "--target", "x0", "--steps", "20", "--seed", "3", "--lr", "0.004", "--batch-size", "64",
             "--preview-every", "10", "--metric-every", "10", "--timestep-sampling", "logit_normal", "--logit-std", "0.8",
             "--out", str(tmp_path / "cli")]
    cli = TrainConfig(**_settings_from_args(train_parser().parse_args(flags))).resolved()
    settings = default_settings(dataset="moons", data_root=tmp_path.name, schedule="linear", timesteps=500, gamma=2.0,
                                target="x0", steps=20, seed=3, lr=0.004, batch_size=64, preview_every=10, quality=True,
                                timestep_sampling="logit_normal", logit_std=0.8)
    app = make_config({}, "soft_min_snr", settings, [str(tmp_path)]).resolved()
    differ = {k: (v, app.to_dict()[k]) for k, v in cli.to_dict().items() if app.to_dict()[k] != v}
    assert set(differ) == {"out_dir", "data_root"}, differ  # where each writes and reads: not what it trains
    runs = []
    for config in (cli, app):
        runs.append([(e.kind, e.step, e.loss) for e in train(config) if e.kind in ("log", "metric", "done")])
    assert runs[0] == runs[1] and len(runs[0]) > 3


def test_a_resumed_run_compares_a_parameter_typed_alone_with_its_own_entrys(tmp_path, capsys):
    """``--logit-std`` without ``--timestep-sampling`` on --resume is the run's sampler's parameter, not a stray one."""
    from minsnr_core.cli import train_main

    out = str(tmp_path / "run")
    base = ["--dataset", "moons", "--preview-every", "0", "--out", out]
    assert train_main([*base, "--steps", "2", "--timestep-sampling", "logit_normal", "--logit-std", "0.8"]) == 0
    assert train_main([*base, "--resume", out, "--steps", "3", "--logit-std", "0.5"]) == 2
    assert "--logit-std 0.5 (the run has 0.8)" in capsys.readouterr().err
    assert train_main([*base, "--resume", out, "--steps", "4", "--logit-std", "0.8"]) == 0
