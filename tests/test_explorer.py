import numpy as np
import pytest

from app.explorer import build_explorer, explain_strategies
from app.main import explorer_fields
from app.urlstate import read_query, write_query
from minsnr_core.schedules import get_schedule
from minsnr_core.weighting import STRATEGIES, loss_weight


def test_figure_holds_one_trace_per_strategy_with_registry_weights():
    result = build_explorer("cosine", 1000, ["min_snr", "snr"], {"gamma": 3.0}, "eps", "t")
    names = [trace.name for trace in result.figure.data]
    assert names == ["Min-SNR-γ (gamma=3)", "SNR (= plain ε-MSE)"]
    expected = loss_weight("min_snr", get_schedule("cosine").snr, "eps", gamma=3.0).numpy()
    assert np.allclose(result.figure.data[0].y, expected)
    assert result.notices == []


def test_gamma_moves_the_curve_and_the_shaded_clamp_region():
    low = build_explorer(strategies=["min_snr"], params={"gamma": 1.0})
    high = build_explorer(strategies=["min_snr"], params={"gamma": 20.0})
    assert not np.allclose(low.figure.data[0].y, high.figure.data[0].y)
    # The clamp is active where SNR > γ: a larger γ means fewer steps (a narrower band from t = 0).
    band_low, band_high = low.figure.layout.shapes[0], high.figure.layout.shapes[0]
    assert band_low.x0 == band_high.x0 == 0
    assert band_high.x1 < band_low.x1
    assert band_high.x1 == int((get_schedule("cosine").snr > 20).sum()) - 1


def test_log_snr_axis_and_hover_data():
    result = build_explorer("linear", 500, ["soft_min_snr"], {}, "v", "log_snr")
    trace = result.figure.data[0]
    snr = get_schedule("linear", 500).snr.numpy()
    assert np.allclose(trace.x, np.log(snr))
    assert np.allclose(trace.customdata[:, 1], snr)
    assert "SNR" in trace.hovertemplate and "t=" in trace.hovertemplate


def test_all_eleven_strategies_at_zero_terminal_snr_draw_finite_curves_with_notices():
    result = build_explorer("cosine", 1000, STRATEGIES.names(), {}, "eps", "t", zero_terminal_snr=True)
    assert len(result.figure.data) == 11
    for trace in result.figure.data:
        assert np.isfinite(np.asarray(trace.y, dtype=float)).all()
    assert any("unbounded" in notice for notice in result.notices)


def test_effective_weight_view():
    result = build_explorer(strategies=["min_snr", "snr"], view="effective")
    for trace in result.figure.data:
        assert (np.asarray(trace.y) > 0).all()


def test_explanation_lists_formula_and_reference():
    text = explain_strategies(["min_snr", "p2"], "v")
    assert r"\min(\mathrm{SNR}, \gamma)" in text and "arXiv 2303.09556" in text and "Choi" in text


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="x_axis"):
        build_explorer(x_axis="sigma")
    with pytest.raises(ValueError, match="gamma"):
        build_explorer(strategies=["min_snr"], params={"gamma": -1})
    with pytest.raises(ValueError, match="num_timesteps"):
        build_explorer(num_timesteps=1)


def test_url_state_round_trip_and_bad_values():
    values, notices = read_query(explorer_fields(), {"gamma": "2", "strategies": "min_snr,p2", "schedule": "linear"})
    assert notices == []
    query = write_query(explorer_fields(), values)
    assert "gamma=2" in query and "strategies=min_snr,p2" in query and "schedule=linear" in query
    values, notices = read_query(explorer_fields(), {"gamma": "-3", "T": "abc", "strategies": "min_snr,bogus"})
    defaults = [field.default for field in explorer_fields()]
    assert values == defaults
    assert len(notices) == 3 and any("bogus" in n for n in notices)
