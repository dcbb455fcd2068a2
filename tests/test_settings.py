"""Settings travel by name, and a new weighting parameter needs the registry alone: a throw-away strategy with a new
parameter reaches the CLI flags, the app's controls, the Train endpoint's config and the links."""

import pytest
import torch

from app import urlstate as us
from app.jobs import ClassLimits
from app.main import build_app, explorer_fields, link_fields
from app.settings import default_settings, endpoint_values, make_config, setting_names
from app.training_ui import PAPER_PRESET
from minsnr_core.checkpoint import load_checkpoint
from minsnr_core.cli import train_main
from minsnr_core.registry import Param
from minsnr_core.weighting import STRATEGIES, Strategy, loss_weight


@pytest.fixture
def zeta_strategy():
    """w_x0 = ζ · SNR^0: a constant weight set by a parameter no other strategy has."""
    entry = Strategy("test_zeta", "Test ζ", r"w_{x_0} = \zeta", "a throw-away strategy", "this test",
                     lambda snr, zeta: torch.full_like(snr, zeta), (Param("zeta", 2.0, 0.5, 8.0, "test factor ζ"),))
    STRATEGIES.register(entry)
    yield entry
    STRATEGIES.unregister("test_zeta")


def test_a_registered_parameter_reaches_the_cli_the_controls_the_config_and_the_links(zeta_strategy, tmp_path):
    assert torch.allclose(loss_weight("test_zeta", torch.tensor([0.5, 4.0]), "x0", zeta=3.0), torch.tensor([3.0, 3.0]))
    # CLI: the flag exists and lands in the run's saved config.
    out = tmp_path / "run"
    assert train_main(["--dataset", "moons", "--steps", "2", "--weighting", "test_zeta", "--zeta", "3",
                       "--preview-every", "0", "--out", str(out)]) == 0
    assert load_checkpoint(out)["config"]["weighting_params"] == {"zeta": 3.0}
    # App: a slider in the explorer, Train and Compare tabs.
    demo = build_app([str(tmp_path)])
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"param-zeta", "train-param-zeta", "compare-param-zeta"} <= ids
    # The Train endpoint's values by name → the config.
    assert "zeta" in setting_names()
    values = endpoint_values("owner-token-0000000000001", "test_zeta", data_root=tmp_path.name, zeta=4.5)
    settings = dict(zip(setting_names(), values[2:], strict=True))
    assert make_config({}, "test_zeta", settings, [str(tmp_path)]).resolved().weighting_params == {"zeta": 4.5}
    # Links: read and written with the parameter's own range.
    fields = link_fields(ClassLimits())
    read, notices = us.read_query(fields, {"zeta": "6"})
    assert read[[f.key for f in fields].index("zeta")] == 6.0 and not notices
    _, notices = us.read_query(fields, {"zeta": "9"})
    assert "zeta=9" in notices[0] and "0.5 to 8" in notices[0]
    assert "zeta" in [f.key for f in explorer_fields()]
    # Once unregistered, nothing of it is left.
    STRATEGIES.unregister("test_zeta")
    try:
        assert "zeta" not in setting_names()
    finally:
        STRATEGIES.register(zeta_strategy)


def test_settings_are_named_and_unknown_or_missing_names_are_refused(tmp_path):
    assert default_settings()["steps"] == 1000 and default_settings(steps=5)["steps"] == 5
    with pytest.raises(ValueError, match="unknown setting"):
        default_settings(stepz=5)
    settings = default_settings(data_root=tmp_path.name, dataset="mnist", gamma=2.0)
    config = make_config({}, "min_snr", settings, [str(tmp_path)]).resolved()
    assert (config.dataset, config.weighting_params, config.steps) == ("mnist", {"gamma": 2.0}, 1000)
    # The run rules are the core's: an image run previews every 200 steps and measures quality with each preview.
    assert (config.preview_every, config.metric_every, config.log_every, config.metric_samples) == (200, 200, 10, 200)
    # Model, batch size and learning rate left automatic (the controls' 0) are the core's too; the Compare preset
    # keeps docs/results.md's model and learning rate.
    assert (config.model, config.batch_size, config.lr) == ("mnist-small", 32, 6e-3)
    given = make_config({}, "min_snr", {**settings, "lr": 0.001, "batch_size": 16}, [str(tmp_path)]).resolved()
    assert (given.batch_size, given.lr) == (16, 0.001)
    paper = make_config({}, "snr", {**PAPER_PRESET, "data_root": tmp_path.name}, [str(tmp_path)]).resolved()
    assert (paper.model, paper.batch_size, paper.lr) == ("mnist", 64, 2e-3)
    del settings["seed"]
    with pytest.raises(ValueError, match="missing setting"):
        make_config({}, "min_snr", settings, [str(tmp_path)])
    # A page sends a data folder's name; the server maps it to the folder, and refuses any path, its own included.
    named = default_settings(data_root=tmp_path.name)
    assert make_config({}, "min_snr", named, [str(tmp_path)]).data_root == str(tmp_path)
    for path in ("/etc", str(tmp_path)):
        with pytest.raises(ValueError, match="data folder must be one of the server's, by name"):
            make_config({}, "min_snr", default_settings(data_root=path), [str(tmp_path)])


def test_the_timestep_sampler_and_only_its_parameters_reach_the_config(tmp_path):
    settings = default_settings(data_root=tmp_path.name, timestep_sampling="log_normal", p_mean=-0.5, history=7)
    config = make_config({}, "min_snr", settings, [str(tmp_path)]).resolved()
    assert (config.timestep_sampling, config.timestep_params) == ("log_normal", {"p_mean": -0.5, "p_std": 1.2})
    with pytest.raises(ValueError, match="unknown timestep sampler 'beta'; allowed: uniform, logit_normal"):
        make_config({}, "min_snr", default_settings(data_root=tmp_path.name, timestep_sampling="beta"), [str(tmp_path)])
