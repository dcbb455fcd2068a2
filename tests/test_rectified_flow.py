"""Rectified flow beside VP diffusion: its schedule, its velocity and weight conversions, its sampler, its training."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minsnr_core.diffusion import Diffusion, convert_prediction, q_sample, training_target, weighted_mse
from minsnr_core.sampling import ddim_sample, ddpm_sample
from minsnr_core.schedules import get_schedule
from minsnr_core.weighting import STRATEGIES, TARGETS, eps_weight_at_zero_snr, loss_weight, schedule_weights

ALL = STRATEGIES.names()


def test_the_schedule_is_the_straight_line_from_data_to_noise():
    schedule = get_schedule("rectified_flow", 8)
    t = torch.arange(1, 9, dtype=torch.float64) / 8
    assert schedule.process == "rf" and schedule.zero_terminal_snr
    assert torch.equal(schedule.alphas, 1 - t) and torch.equal(schedule.sigmas, t)
    assert torch.allclose(schedule.snr, ((1 - t) / t) ** 2, rtol=1e-15)
    assert schedule.snr[-1].item() == 0.0 and schedule.snr[0].item() == pytest.approx(49.0)
    # The zero-terminal-SNR flag has nothing to change.
    assert torch.equal(get_schedule("rectified_flow", 8, zero_terminal_snr=True).snr, schedule.snr)


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from([(4, 3), (2, 1, 5, 5)]), seed=st.integers(0, 2**31 - 1), time=st.floats(0.001, 0.999))
def test_velocity_error_is_one_plus_root_snr_squared_times_the_x0_error(shape, seed, time):
    """Computed directly: noise x0 on the line, take any guess of the velocity, compare the errors it implies."""
    generator = torch.Generator().manual_seed(seed)
    x0, noise, guess = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3))
    t = torch.full((shape[0],), time, dtype=torch.float64)
    x_t = (1 - time) * x0 + time * noise  # the definition, not q_sample
    assert torch.allclose(q_sample(x0, noise, 1 - t, t), x_t)
    assert torch.allclose(training_target("v", x0, noise, 1 - t, t, "rf"), noise - x0)
    predicted = convert_prediction(guess, "v", x_t, 1 - t, t, "rf")
    assert torch.allclose((1 - time) * predicted["x0"] + time * predicted["eps"], x_t)  # on the same line
    assert torch.allclose(predicted["eps"] - predicted["x0"], guess)
    err = {space: (predicted[space] - training_target(space, x0, noise, 1 - t, t, "rf")).pow(2).flatten(1).sum(1)
           for space in TARGETS}
    snr = torch.tensor(((1 - time) / time) ** 2, dtype=torch.float64)
    assert torch.allclose(err["v"], (1 + snr.sqrt()) ** 2 * err["x0"], rtol=1e-7, atol=1e-12)
    assert torch.allclose(err["eps"], snr * err["x0"], rtol=1e-7, atol=1e-12)
    if snr > 0.01:  # VP's rule w_v = w_x0/(SNR + 1) does not carry over: the scales differ by 2√SNR
        assert not torch.allclose(err["v"], (snr + 1) * err["x0"], rtol=1e-3)


@pytest.mark.parametrize("name", [n for n in ALL if not STRATEGIES.get(n).per_unit_log_snr])
@pytest.mark.parametrize("source", TARGETS)
def test_the_same_output_gives_the_same_weighted_loss_in_every_space(name, source):
    generator = torch.Generator().manual_seed(0)
    x0, noise, output = (torch.randn(64, 1, 6, 6, generator=generator, dtype=torch.float64) for _ in range(3))
    schedule = get_schedule("rectified_flow", 1000)
    t = torch.randint(0, 999, (64,), generator=generator)  # not t = 1, where ε cannot recover x0
    alpha, sigma = schedule.alphas[t], schedule.sigmas[t]
    x_t = q_sample(x0, noise, alpha, sigma)
    as_all = convert_prediction(output, source, x_t, alpha, sigma, "rf")
    losses = {}
    for space in TARGETS:
        weights = loss_weight(name, schedule.snr[t], space, process="rf")
        losses[space] = weighted_mse(as_all[space], training_target(space, x0, noise, alpha, sigma, "rf"), weights)[0]
    assert losses["eps"].item() == pytest.approx(losses["x0"].item(), rel=1e-6)
    assert losses["v"].item() == pytest.approx(losses["x0"].item(), rel=1e-6)


def test_the_plain_velocity_loss_is_a_constant_weight_on_v():
    schedule = get_schedule("rectified_flow", 1000)
    assert torch.allclose(schedule_weights("flow_velocity", schedule, "v"), torch.ones(1000, dtype=torch.float64))
    # …and Min-SNR-γ on the velocity is min(SNR, γ)/(1 + √SNR)², 0 at t = 1 (pure noise, SNR = 0).
    weights = schedule_weights("min_snr", schedule, "v", gamma=5.0)
    snr = schedule.snr
    assert torch.allclose(weights, snr.clamp(max=5.0) / (1 + snr.sqrt()) ** 2) and weights[-1].item() == 0.0


@pytest.mark.parametrize("name", ALL)
def test_t_equal_one_gives_finite_weights_or_an_error_naming_the_strategy(name):
    schedule = get_schedule("rectified_flow", 1000)
    if STRATEGIES.get(name).per_unit_log_snr:
        with pytest.raises(ValueError, match=f"strategy '{name}' is not defined"):
            schedule_weights(name, schedule, "v")
        return
    for target in ("x0", "v"):
        assert torch.isfinite(schedule_weights(name, schedule, target)).all()
    if eps_weight_at_zero_snr(name) is None:
        with pytest.raises(ValueError, match=f"strategy '{name}' has an unbounded"):
            schedule_weights(name, schedule, "eps")
    else:
        assert torch.isfinite(schedule_weights(name, schedule, "eps")).all()


def test_t_equal_zero_is_refused_not_nan():
    """SNR = ∞ (the clean data, t = 0) is no step of any schedule; a caller passing it gets a named error."""
    for process in ("vp", "rf"):
        with pytest.raises(ValueError, match="snr must be finite"):
            loss_weight("snr", torch.tensor([math.inf, 1.0]), "v", process=process)


class _LinearVelocity(torch.nn.Module):
    """A fixed velocity field v̂(x, t) = 0.3·x + 0.01·t, to follow the sampler step by step."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.3 * x + 0.01 * t.reshape(-1, *[1] * (x.dim() - 1)).to(x.dtype)


def test_deterministic_sampling_is_the_euler_step_of_the_flow():
    schedule = get_schedule("rectified_flow", 20)
    diffusion = Diffusion(schedule, "v", "flow_velocity")
    model = _LinearVelocity()
    x, trajectory = ddim_sample(model, diffusion, (5, 3), 20, clip=None, return_trajectory=True,
                                generator=torch.Generator().manual_seed(0))
    times = [*schedule.sigmas.tolist(), 0.0]  # σ = t; after the last step t = 0
    states = [*trajectory.x_t, x]
    for i, step in enumerate(trajectory.timesteps):
        current, following = times[step], times[step - 1] if step > 0 else 0.0
        velocity = model(states[i], torch.full((5,), step))
        assert torch.allclose(states[i + 1], states[i] + (following - current) * velocity, atol=1e-5)


class _PointMass(torch.nn.Module):
    """The exact x0-predictor for data that is a single point c: it always answers c."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.c)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_both_samplers_keep_the_process_marginals_with_an_exact_model(eta):
    """With the exact denoiser of a point mass c, every x_t the sampler visits must be distributed as the process's
    x_t = (1 − t)·c + t·ε: mean α_t·c and standard deviation σ_t — for the ancestral step (η = 1) as for Euler. The
    covariance of consecutive states tells the two apart: σ_t·σ_s for Euler (one noise throughout), (α_t/α_s)·σ_s²
    for the ancestral step (the Gaussian posterior of rectified flow's x_s given x_t)."""
    schedule = get_schedule("rectified_flow", 10)
    diffusion = Diffusion(schedule, "x0", "constant")
    _, trajectory = ddim_sample(_PointMass(0.5), diffusion, (40_000, 1), 10, eta, clip=None, return_trajectory=True,
                                generator=torch.Generator().manual_seed(1))
    alphas, sigmas = schedule.alphas.tolist(), schedule.sigmas.tolist()
    for step, x_t in zip(trajectory.timesteps, trajectory.x_t, strict=True):
        assert x_t.mean().item() == pytest.approx(alphas[step] * 0.5, abs=0.02)
        assert x_t.std().item() == pytest.approx(sigmas[step], rel=0.03)
    states = list(zip(trajectory.timesteps, trajectory.x_t, strict=True))
    for (t, x_t), (s, x_s) in zip(states, states[1:], strict=False):
        covariance = ((x_t - x_t.mean()) * (x_s - x_s.mean())).mean().item()
        expected = sigmas[t] * sigmas[s] if eta == 0 else alphas[t] / alphas[s] * sigmas[s] ** 2
        assert covariance == pytest.approx(expected, abs=0.015), (t, s)
    x, _ = ddpm_sample(_PointMass(0.5), diffusion, (100, 1), clip=None, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(x, torch.full_like(x, 0.5))


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_vp_sampling_is_still_ddims_step_in_its_alpha_bar_form(eta):
    """The α/σ form of the sampler gives VP schedules DDIM's own step (Song et al. 2021, Eq. 12, in ᾱ), written
    out here independently, with clipping, for a model whose prediction depends on x and t."""
    schedule = get_schedule("cosine", 50)
    diffusion = Diffusion(schedule, "eps", "snr")
    model = _LinearVelocity()  # any fixed function of (x, t) serves as an ε-model here
    shape = (6, 4)
    got, _ = ddim_sample(model, diffusion, shape, 10, eta, generator=torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    abar = schedule.alphas_cumprod.to(torch.float32)
    x = torch.randn(shape, generator=generator)
    steps = torch.linspace(49, 0, 10).round().long().tolist()
    for i, t in enumerate(steps):
        a_t = abar[t]
        a_s = abar[steps[i + 1]] if i + 1 < len(steps) else torch.tensor(1.0)
        eps = model(x, torch.full((6,), t))
        x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
        eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        c = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).clamp(min=0).sqrt()
        x = a_s.sqrt() * x0 + (1 - a_s - c**2).clamp(min=0).sqrt() * eps
        if eta > 0 and i + 1 < len(steps):
            x = x + c * torch.randn(shape, generator=generator)
    assert torch.allclose(got, x, atol=1e-5)


def test_a_diffusion_refuses_the_eps_target_where_snr_reaches_zero():
    with pytest.raises(ValueError, match="target 'eps' cannot be trained or sampled on schedule 'rectified_flow'"):
        Diffusion(get_schedule("rectified_flow", 100), "eps", "min_snr")


def test_training_config_refuses_what_rectified_flow_cannot_train():
    from minsnr_core.config import TrainConfig

    with pytest.raises(ValueError, match="target 'eps' cannot be trained or sampled on schedule 'rectified_flow'"):
        TrainConfig(dataset="moons", schedule="rectified_flow", target="eps").resolved()
    with pytest.raises(ValueError, match="strategy 'sigmoid'"):
        TrainConfig(dataset="moons", schedule="rectified_flow", target="v", weighting="sigmoid").resolved()


def test_moons_trains_with_rectified_flow_to_the_default_runs_quality_bar():
    from minsnr_core.data import toy_points
    from minsnr_core.metrics import toy_score
    from minsnr_core.training import TrainConfig, train

    config = TrainConfig(dataset="moons", schedule="rectified_flow", target="v", weighting="min_snr", steps=200,
                         log_every=10, preview_every=200, metric_every=200, metric_samples=256, toy_size=2000,
                         device="cpu")
    score = [e for e in train(config) if e.kind == "metric"][-1].metric["swd"]
    # The bar of tests/test_training.py's default run: 1.5 × the score of 256 real points (mean of 10 draws, 0.16).
    floor = sum(toy_score(toy_points("moons", 256, seed=s), "moons")["swd"] for s in range(10)) / 10
    assert score < 1.5 * floor
