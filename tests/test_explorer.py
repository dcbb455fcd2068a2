import numpy as np
import pytest
import torch

from app.explorer import build_explorer, explain_strategies
from app.main import explorer_fields
from app.urlstate import read_query, write_query
from minsnr_core.schedules import get_schedule
from minsnr_core.weighting import STRATEGIES, loss_weight


def test_figure_holds_one_trace_per_strategy_with_registry_weights():
    result = build_explorer("cosine", 1000, ["min_snr", "snr"], {"gamma": 3.0}, "eps", "t")
    names = [trace.name for trace in result.figure.data]
    expected = loss_weight("min_snr", get_schedule("cosine").snr, "eps", gamma=3.0).numpy()
    # Each legend entry carries the mean weight E[w] over uniform t (the plain ε loss has weight 1 everywhere).
    assert names == [f"Min-SNR-γ (gamma=3) · E[w] = {expected.mean():.3g}", "SNR (= plain ε-MSE) · E[w] = 1"]
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


@pytest.mark.parametrize("schedule", ["cosine", "rectified_flow"])
def test_every_strategy_at_zero_terminal_snr_draws_a_finite_curve_with_notices(schedule):
    result = build_explorer(schedule, 1000, STRATEGIES.names(), {}, "eps", "t", zero_terminal_snr=True)
    assert len(result.figure.data) == len(STRATEGIES.names())
    for trace in result.figure.data:
        assert np.isfinite(np.asarray(trace.y, dtype=float)).all()
    assert any("unbounded" in notice for notice in result.notices)


def test_rectified_flow_converts_into_its_own_velocity_space():
    """The explorer's v curve under rectified flow is w_x0/(1 + √SNR)², the plain velocity loss is flat at 1, and the
    explanation says which conversion it drew."""
    result = build_explorer("rectified_flow", 1000, ["min_snr", "flow_velocity"], {"gamma": 5.0}, "v", "t", log_y=False)
    snr = get_schedule("rectified_flow", 1000).snr.numpy()
    assert np.allclose(result.figure.data[0].y, np.minimum(snr, 5.0) / (1 + np.sqrt(snr)) ** 2, rtol=1e-12)
    assert np.allclose(result.figure.data[1].y, 1.0)
    assert "(1+\\sqrt{\\mathrm{SNR}})^2" in result.explanation and "rectified flow" in result.figure.layout.title.text
    vp = build_explorer("cosine", 1000, ["min_snr"], {"gamma": 5.0}, "v", "t")
    assert "(\\mathrm{SNR}+1)" in vp.explanation and "Rectified flow" not in vp.explanation


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


def test_a_timestep_sampler_reweights_the_curves_and_each_weighting_becomes_a_sampler():
    from minsnr_core.timesteps import timestep_probabilities

    schedule = get_schedule("cosine", 1000)
    weights = loss_weight("min_snr", schedule.snr, "eps", gamma=5.0).numpy()
    p = timestep_probabilities("logit_normal", schedule, logit_mean=0.5, logit_std=1.0).numpy()
    sampled = build_explorer(strategies=["min_snr"], sampler="logit_normal", sampler_params={"logit_mean": 0.5},
                             log_y=False)
    # The weight that gives the same expected loss under uniform t: T·p(t)·w(t); the sampler's own curve beside it.
    assert np.allclose(sampled.figure.data[0].y, 1000 * p * weights)
    assert sampled.figure.data[1].name == "Logit-normal T·p(t)" and np.allclose(sampled.figure.data[1].y, 1000 * p)
    assert sampled.figure.data[0].name.endswith(f"E[w] = {(p * weights).sum():.3g}")
    assert "× T·p(t)" in sampled.figure.layout.yaxis.title.text
    # As a distribution: q ∝ p·w, drawn as T·q; with uniform p it is w / mean(w), whose mean is 1.
    as_sampler = build_explorer(strategies=["min_snr", "constant"], view="sampler", log_y=False)
    assert np.allclose(as_sampler.figure.data[0].y, weights / weights.mean())
    assert np.mean(as_sampler.figure.data[0].y) == pytest.approx(1.0)
    # A weight unbounded at SNR = 0 has no distribution: said, not drawn.
    unbounded = build_explorer(strategies=["constant"], view="sampler", zero_terminal_snr=True, target="eps")
    assert len(unbounded.figure.data[0].y) == 0
    assert any("no timestep distribution reproduces it" in notice for notice in unbounded.notices)
    with pytest.raises(ValueError, match="sampler must be one of uniform, logit_normal, log_normal"):
        build_explorer(sampler="importance")


def test_the_first_paint_draws_every_curve_on_either_axis():
    """The static SVG (app/first_paint.py) holds one polyline per trace with the trace's name, keeps the curve's shape
    when x falls along t (the log-SNR axis), and writes no NaN for non-finite values."""
    import re

    from app.first_paint import figure_svg

    for x_axis in ("t", "log_snr"):
        figure = build_explorer("cosine", 1000, ["snr", "min_snr"], {"gamma": 5.0}, "eps", x_axis).figure
        svg = figure_svg(figure)
        lines = re.findall(r'<polyline[^>]*points="([^"]*)"><title>([^<]*)</title>', svg)
        assert [name for _, name in lines] == [t.name for t in figure.data]
        for points, _ in lines:
            assert len(points.split()) > 100, x_axis  # one point per 2 units of the 810-wide plot, not 2 in all
        assert "nan" not in svg.lower() and "Min-SNR clamp active" in svg
    figure = build_explorer("cosine", 100, ["min_snr"], {"gamma": 5.0}, "eps", "t", log_y=False).figure
    figure.data[0].x = [float("nan"), *list(figure.data[0].x)[1:]]
    svg = figure_svg(figure)
    assert "nan" not in svg.lower() and "<polyline" in svg


def test_the_early_paint_goes_into_the_root_page_only_and_keeps_its_length_right():
    """app.first_paint.EarlyPaint: the block right after <body ...> of the root page's HTML (sent in two chunks here),
    with its Content-Length, and a HEAD of it announces that length; another path, a linked page (a blank value
    counts, as in the page), an error, another content type or a compressed body pass through byte for byte."""
    import asyncio
    import concurrent.futures

    from app.first_paint import EarlyPaint

    page = b"<html><head><script>x = '<body>'</script></head><body class='x'><main></main></body></html>"
    block = b"<div id=early>E</div>"

    def get(path, query=b"", method="GET", root="", status=200, headers=((b"content-type", b"text/html; charset=utf-8"),)):
        sent = []

        async def inner(scope, receive, send):
            await send({"type": "http.response.start", "status": status,
                        "headers": [*headers, (b"content-length", b"%d" % len(page))]})
            if method == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                return
            await send({"type": "http.response.body", "body": page[:30], "more_body": True})
            await send({"type": "http.response.body", "body": page[30:]})

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "query_string": query, "root_path": root}
        # In a thread of its own: the browser tests' Playwright may hold this thread's event loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, EarlyPaint(inner, block.decode(), ["gamma"])(scope, None, send)).result()
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return body, int(dict(sent[0]["headers"])[b"content-length"])

    body, length = get("/")
    assert body == page.replace(b"<body class='x'>", b"<body class='x'>" + block) and length == len(body)
    assert get("/minsnr/", root="/minsnr")[0] == body
    assert get("/", method="HEAD") == (b"", len(body))
    for request in (dict(path="/config"), dict(path="/", query=b"gamma=2&T=10"), dict(path="/", query=b"gamma="),
                    dict(path="/", status=500), dict(path="/", headers=((b"content-type", b"application/json"),)),
                    dict(path="/", headers=((b"content-type", b"text/html"), (b"content-encoding", b"br")))):
        assert get(**request) == (page, len(page)), request


def test_the_resolution_shift_moves_the_schedule_not_the_weight_as_a_function_of_snr():
    """SD3's shift α moves every log-SNR by −2·log α: on the λ axis each curve is the same function of λ over a range
    moved by −2·log α; on the t axis fewer steps keep SNR > γ, so Min-SNR's clamp band ends earlier."""
    plain = build_explorer(strategies=["min_snr"], params={"gamma": 5.0}, x_axis="log_snr")
    shifted = build_explorer(strategies=["min_snr"], params={"gamma": 5.0}, x_axis="log_snr", schedule_shift=3.0)
    assert np.allclose(np.asarray(shifted.figure.data[0].x), np.asarray(plain.figure.data[0].x) - 2 * np.log(3.0))
    lam = np.asarray(shifted.figure.data[0].x)
    assert np.allclose(shifted.figure.data[0].y, loss_weight("min_snr", torch.tensor(np.exp(lam)), "eps", gamma=5.0))
    by_t = [build_explorer(strategies=["min_snr"], params={"gamma": 5.0}, schedule_shift=a) for a in (1.0, 3.0)]
    assert by_t[1].figure.layout.shapes[0].x1 < by_t[0].figure.layout.shapes[0].x1
    assert by_t[1].figure.layout.shapes[0].x1 == int((get_schedule("cosine", shift=3.0).snr > 5).sum()) - 1
    assert "shifted by α = 3" in by_t[1].figure.layout.title.text
    # The link carries it, within the run setting's range.
    fields = explorer_fields()
    values, notices = read_query(fields, {"shift": "3"})
    assert values[[f.key for f in fields].index("shift")] == 3.0 and notices == []
    assert read_query(fields, {"shift": "50"})[1]
