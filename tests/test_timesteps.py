"""Timestep samplers: closed forms, the draws they make, the importance sampler's unbiasedness, the conversions
between a weighting and a sampler, and their input rules."""

import math
from statistics import NormalDist

import pytest
import torch
from scipy import stats as scipy_stats

from minsnr_core.schedules import get_schedule
from minsnr_core.timesteps import (
    TIMESTEP_SAMPLERS,
    TimestepDistribution,
    distribution_for_weights,
    equivalent_weights,
    mean_weight,
    timestep_probabilities,
)
from minsnr_core.weighting import schedule_weights


@pytest.mark.parametrize("name", TIMESTEP_SAMPLERS.names())
@pytest.mark.parametrize("zero_snr", [False, True])
def test_every_sampler_is_a_distribution_over_the_steps(name, zero_snr):
    schedule = get_schedule("cosine", 200, zero_terminal_snr=zero_snr)
    p = timestep_probabilities(name, schedule)
    assert p.shape == (200,) and torch.isfinite(p).all() and (p >= 0).all()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)


def test_logit_normal_matches_its_closed_form_and_its_draws():
    T, m, s = 50, 0.5, 0.8
    schedule = get_schedule("linear", T)
    p = timestep_probabilities("logit_normal", schedule, logit_mean=m, logit_std=s)
    normal = NormalDist(m, s)

    def cdf_of_fraction(u):  # P(sigmoid(n) < u)
        return 0.0 if u == 0 else 1.0 if u == 1 else normal.cdf(math.log(u / (1 - u)))

    expected = [cdf_of_fraction((t + 1) / T) - cdf_of_fraction(t / T) for t in range(T)]
    assert p.tolist() == pytest.approx(expected, abs=1e-12)
    # SD3's recipe drawn directly: step floor(sigmoid(n)·T).
    n = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * s + m
    direct = torch.bincount((torch.sigmoid(n) * T).long().clamp(max=T - 1), minlength=T) / len(n)
    assert (direct - p).abs().max() < 0.003
    drawn, factor = TimestepDistribution("logit_normal", schedule, {"logit_mean": m, "logit_std": s}).sample(
        400_000, torch.Generator().manual_seed(1), "cpu")
    assert factor is None, "a fixed sampler changes the objective; it does not reweight the loss"
    assert (torch.bincount(drawn, minlength=T) / len(drawn) - p).abs().max() < 0.003


def test_edm_log_normal_puts_ln_sigma_where_edm_does():
    schedule = get_schedule("cosine", 4000)
    p = timestep_probabilities("log_normal", schedule, p_mean=-1.2, p_std=1.2)
    ln_sigma = -schedule.log_snr / 2  # σ = 1/√SNR
    mean = float((p * ln_sigma).sum())
    std = float((p * (ln_sigma - mean) ** 2).sum().sqrt())
    assert mean == pytest.approx(-1.2, abs=0.02) and std == pytest.approx(1.2, abs=0.02)
    # Closed form at one step: the mass of λ between the midpoints to its neighbours.
    lam, t = schedule.log_snr.tolist(), 1234
    normal = NormalDist(2.4, 2.4)
    expected = normal.cdf((lam[t - 1] + lam[t]) / 2) - normal.cdf((lam[t] + lam[t + 1]) / 2)
    assert float(p[t]) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("name", "params", "law"), [
    ("laplace", {"log_snr_centre": 0.0, "laplace_scale": 0.5}, lambda: scipy_stats.laplace(0.0, 0.5)),
    ("laplace", {"log_snr_centre": -2.0, "laplace_scale": 1.5}, lambda: scipy_stats.laplace(-2.0, 1.5)),
    ("cauchy", {"log_snr_centre": 0.0, "cauchy_scale": 1.0}, lambda: scipy_stats.cauchy(0.0, 1.0)),
    ("cauchy", {"log_snr_centre": 1.0, "cauchy_scale": 0.3}, lambda: scipy_stats.cauchy(1.0, 0.3))])
def test_laplace_and_cauchy_in_log_snr_match_their_laws(name, params, law):
    """Hang et al. 2024: λ = log SNR drawn from the law; each step takes the law's mass between the midpoints of
    its λ and its neighbours' (scipy's CDF, an independent implementation)."""
    schedule = get_schedule("cosine", 1000)
    p = timestep_probabilities(name, schedule, **params)
    lam = schedule.log_snr.tolist()
    cdf = law().cdf
    for t in (1, 250, 500, 700, 998):
        expected = cdf((lam[t - 1] + lam[t]) / 2) - cdf((lam[t] + lam[t + 1]) / 2)
        assert float(p[t]) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert float(p[0]) == pytest.approx(1 - cdf((lam[0] + lam[1]) / 2), rel=1e-9)  # the upper tail
    # The density per unit of λ (mass over the λ a step spans) peaks at the step whose λ is nearest the centre. The
    # mass per step need not: near t = T a cosine step spans a wide λ range, which a heavy tail fills.
    nearest = int(torch.argmin((schedule.log_snr - params["log_snr_centre"]).abs()))
    density = p[1:-1] / torch.gradient(schedule.log_snr)[0][1:-1].abs()
    assert abs(int(density.argmax()) + 1 - nearest) <= 2


def _draws_histogram(times: torch.Tensor, T: int) -> torch.Tensor:
    return torch.bincount((times * T).long().clamp(max=T - 1), minlength=T) / len(times)


@pytest.mark.parametrize("mode_scale", [1.29, 0.5, -0.5])
def test_sd3_mode_sampler_matches_its_draws(mode_scale):
    """SD3 §3.1's recipe drawn directly: u uniform, t/T = 1 − u − s(cos²(πu/2) − 1 + u)."""
    T = 40
    p = timestep_probabilities("mode", get_schedule("cosine", T), mode_scale=mode_scale)
    u = torch.rand(1_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    direct = _draws_histogram(1 - u - mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u), T)
    assert (direct - p).abs().max() < 0.002
    if mode_scale > 0:
        assert p[T // 2] > p[0] and p[T // 2] > p[-1]  # the middle favoured
    else:
        assert p[T // 2] < p[0] and p[T // 2] < p[-1]
    assert timestep_probabilities("mode", get_schedule("cosine", T), mode_scale=0.0).tolist() == pytest.approx(
        [1 / T] * T, abs=1e-12)  # s = 0 is uniform


def test_sd3_cosmap_matches_its_draws():
    T = 40
    p = timestep_probabilities("cosmap", get_schedule("cosine", T))
    u = torch.rand(1_000_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    direct = _draws_histogram(1 - 1 / (torch.tan(math.pi * u / 2) + 1), T)
    assert (direct - p).abs().max() < 0.002


def test_log_normal_gives_no_mass_to_a_step_with_snr_zero():
    schedule = get_schedule("linear", 100, zero_terminal_snr=True)
    p = timestep_probabilities("log_normal", schedule)
    assert float(p[-1]) == 0.0 and float(p.sum()) == pytest.approx(1.0, abs=1e-12)


def test_uniform_draws_exactly_what_training_drew_before_samplers_existed():
    schedule = get_schedule("cosine", 1000)
    t, factor = TimestepDistribution("uniform", schedule).sample(64, torch.Generator().manual_seed(3), "cpu")
    assert factor is None
    assert torch.equal(t, torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(3)))


def test_importance_sampler_is_unbiased_on_a_fixed_loss_table():
    T = 20
    schedule = get_schedule("cosine", T)
    losses = torch.linspace(0.05, 3.0, T, dtype=torch.float64) ** 2  # a fixed loss per step
    sampler = TimestepDistribution("importance", schedule, {"history": 4})
    generator = torch.Generator().manual_seed(0)
    while not sampler.warmed_up():  # uniform, weight 1, until every step has 4 losses
        t, factor = sampler.sample(16, generator, "cpu")
        assert torch.equal(factor, torch.ones(16))
        sampler.observe(t, losses[t])
    p = sampler.current_probabilities()
    assert p.tolist() == pytest.approx((0.999 * losses / losses.sum() + 0.001 / T).tolist(), rel=1e-9)
    t, factor = sampler.sample(400_000, generator, "cpu")
    estimate = float((factor.double() * losses[t]).mean())
    assert estimate == pytest.approx(float(losses.mean()), rel=0.01), "E_p[L/(T·p)] is the uniform mean loss"
    # ... with less variance than uniform sampling of the same table.
    assert float((factor.double() * losses[t]).var()) < float(losses.var())


def test_importance_history_keeps_the_last_losses_of_each_step():
    sampler = TimestepDistribution("importance", get_schedule("cosine", 3), {"history": 2})
    sampler.observe(torch.tensor([0, 2, 0, 0]), torch.tensor([1.0, 5.0, 2.0, 3.0]))
    assert sorted(sampler.history[0].tolist()) == [2.0, 3.0] and sampler.counts.tolist() == [3, 0, 1]
    sampler.observe(torch.tensor([0]), torch.tensor([4.0]))
    assert sorted(sampler.history[0].tolist()) == [3.0, 4.0]
    restored = TimestepDistribution("importance", get_schedule("cosine", 3), {"history": 2})
    restored.load_state_dict(sampler.state_dict())
    assert torch.equal(restored.history, sampler.history) and torch.equal(restored.counts, sampler.counts)


def test_a_weighting_and_its_sampler_convert_into_each_other():
    schedule = get_schedule("cosine", 1000)
    weights = schedule_weights("min_snr", schedule, "eps", gamma=5.0)
    p = distribution_for_weights(weights)
    constant = torch.full_like(weights, mean_weight(weights))
    assert equivalent_weights(p, constant).tolist() == pytest.approx(weights.tolist(), rel=1e-9)
    # and back: a sampler with unit weight is the weighting T·p under uniform sampling.
    q = timestep_probabilities("logit_normal", schedule)
    assert distribution_for_weights(equivalent_weights(q, torch.ones(1000))).tolist() == pytest.approx(q.tolist())
    assert mean_weight(torch.ones(1000), q) == pytest.approx(1.0)


@pytest.mark.parametrize(("name", "params", "message"), [
    ("logit_normal", {"logit_std": 0.0}, "logit_normal: parameter 'logit_std' must be in (0, 3], got 0"),
    ("logit_normal", {"logit_mean": float("nan")}, "logit_normal: parameter 'logit_mean' must be finite"),
    ("log_normal", {"p_std": -1.0}, "log_normal: parameter 'p_std' must be in (0, 5], got -1"),
    ("log_normal", {"p_mean": float("inf")}, "log_normal: parameter 'p_mean' must be finite"),
    ("importance", {"history": 0}, "importance: parameter 'history' must be in [1, 100], got 0"),
    ("importance", {"history": 2.5}, "importance: parameter 'history' must be a whole number in [1, 100], got 2.5"),
    ("uniform", {"history": 3}, "uniform: unknown parameter(s) ['history']; allowed: none"),
])
def test_bad_parameters_are_refused_by_name(name, params, message):
    with pytest.raises(ValueError, match=None) as error:
        TimestepDistribution(name, get_schedule("cosine", 100), params)
    assert str(error.value).startswith(message)


def test_an_unknown_sampler_names_the_allowed_ones():
    with pytest.raises(ValueError) as error:
        TimestepDistribution("beta", get_schedule("cosine", 100))
    assert all(name in str(error.value) for name in TIMESTEP_SAMPLERS.names())


# --- in training -----------------------------------------------------------------------------------------------------
TOY = dict(dataset="moons", log_every=10, preview_every=0, toy_size=2000, device="cpu")


@pytest.mark.parametrize(("sampler", "params"), [("logit_normal", {}), ("log_normal", {}), ("importance", {}),
                                                 ("mode", {})])
def test_moons_trains_to_the_default_runs_quality_bar_with_each_sampler(sampler, params, tmp_path):
    from minsnr_core.checkpoint import load_checkpoint
    from minsnr_core.data import toy_points
    from minsnr_core.metrics import toy_score
    from minsnr_core.training import TrainConfig, train

    config = TrainConfig(**{**TOY, "preview_every": 200, "metric_every": 200, "metric_samples": 256}, steps=200,
                         timestep_sampling=sampler, timestep_params=params, out_dir=str(tmp_path))
    score = [e for e in train(config) if e.kind == "metric"][-1].metric["swd"]
    # The bar of tests/test_training.py's default run: 1.5 × the score of 256 real points (mean of 10 draws, 0.16).
    floor = sum(toy_score(toy_points("moons", 256, seed=s), "moons")["swd"] for s in range(10)) / 10
    assert score < 1.5 * floor
    state = load_checkpoint(tmp_path)
    if sampler == "importance":  # it left its uniform warm-up: every step has its 10 losses
        assert int(state["timestep_sampler"]["counts"].min()) >= 10


def test_an_importance_sampled_run_resumes_exactly(tmp_path):
    import threading

    from minsnr_core.training import TrainConfig, train

    settings = dict(**TOY, timesteps=50, timestep_sampling="importance", timestep_params={"history": 2})
    straight = [(e.step, e.loss) for e in train(TrainConfig(**settings, steps=60)) if e.kind == "log"]
    stop, first = threading.Event(), []
    for event in train(TrainConfig(**settings, steps=60, out_dir=str(tmp_path)), stop=stop):
        first.append(event)
        if event.kind == "log" and event.step == 30:
            stop.set()
    resumed = list(train(TrainConfig(**settings, steps=60, out_dir=str(tmp_path)), resume=tmp_path))
    assert [(e.step, e.loss) for e in first + resumed if e.kind == "log"] == straight
    other = TrainConfig(**{**settings, "timestep_sampling": "uniform", "timestep_params": {}}, steps=60)
    from minsnr_core.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="timestep_sampling='importance'"):
        list(train(other, resume=tmp_path))


def test_the_loss_factor_multiplies_each_samples_weight():
    from minsnr_core.diffusion import Diffusion

    diffusion = Diffusion(get_schedule("cosine", 100), "eps", "min_snr")
    model = torch.nn.Linear(2, 2)
    x0, noise, t = torch.randn(8, 2), torch.randn(8, 2), torch.arange(0, 80, 10)
    factor = torch.linspace(0.5, 2.0, 8)
    with torch.no_grad():
        plain, per_sample = diffusion.loss(lambda x, _: model(x), x0, t, noise)
        weighted, _ = diffusion.loss(lambda x, _: model(x), x0, t, noise, loss_factor=factor)
    assert float(weighted) == pytest.approx(float((diffusion.weights[t] * factor * per_sample).mean()), rel=1e-6)
    assert float(weighted) != pytest.approx(float(plain))


def test_the_cli_takes_a_sampler_and_its_parameters_and_refuses_others(tmp_path):
    from .test_cli_safety import cli

    out = tmp_path / "run"
    cli("train", "--dataset", "moons", "--steps", 20, "--preview-every", 0, "--timestep-sampling", "logit_normal",
        "--logit-mean", 0.5, "--out", out)
    from minsnr_core.checkpoint import load_checkpoint

    config = load_checkpoint(out)["config"]
    assert config["timestep_sampling"] == "logit_normal"
    assert config["timestep_params"] == {"logit_mean": 0.5, "logit_std": 1.0}
    message = cli("train", "--dataset", "moons", "--steps", 5, "--p-std", 2, "--out", tmp_path / "b", code=2)
    assert message.endswith("--p-std is a parameter of another timestep sampler; --timestep-sampling uniform takes none")
    message = cli("train", "--resume", out, "--timestep-sampling", "importance", "--out", out, code=2)
    assert "--timestep-sampling importance (the run has logit_normal)" in message


def test_a_shifted_schedule_trains_and_a_continued_run_must_keep_its_shift(tmp_path):
    from minsnr_core.checkpoint import CheckpointError
    from minsnr_core.runs import load_run
    from minsnr_core.training import TrainConfig, train

    config = TrainConfig(**TOY, steps=20, schedule_shift=3.0, timestep_sampling="laplace", out_dir=str(tmp_path))
    events = list(train(config))
    assert events[-1].kind == "done"
    loaded = load_run(tmp_path, "cpu")
    assert loaded.config.schedule_shift == 3.0 and loaded.diffusion.schedule.shift == 3.0
    with pytest.raises(CheckpointError, match="schedule_shift"):
        list(train(TrainConfig(**{**config.to_dict(), "steps": 30, "schedule_shift": 1.0}), resume=tmp_path))
    with pytest.raises(ValueError, match=r"schedule_shift must be a number in \[0.1, 10\]; got 0.0"):
        TrainConfig(**TOY, schedule_shift=0.0).resolved()
