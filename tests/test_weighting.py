import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minsnr_core.diffusion import convert_prediction, q_sample, training_target, weighted_mse
from minsnr_core.schedules import get_schedule
from minsnr_core.weighting import (
    STRATEGIES,
    TARGETS,
    effective_weight,
    eps_weight_at_zero_snr,
    list_strategies,
    loss_weight,
    min_snr_clamp_active,
    schedule_weights,
)

ALL = STRATEGIES.names()
SNRS = torch.logspace(-6, 6, 200, dtype=torch.float64)


def test_all_twelve_strategies_are_registered_with_metadata():
    assert ALL == ["constant", "snr", "trunc_snr", "snr_plus_one", "flow_velocity", "min_snr", "max_snr", "soft_min_snr",
                   "p2", "edm", "debiased", "sigmoid"]
    for entry in list_strategies():
        assert entry.display_name and entry.latex and entry.description and entry.reference
        for param in entry.params:
            assert param.minimum <= param.default <= param.maximum


@pytest.mark.parametrize(
    ("name", "expected_x0"),
    [
        ("constant", lambda s: torch.ones_like(s)),
        ("snr", lambda s: s),
        ("trunc_snr", lambda s: torch.maximum(s, torch.ones_like(s))),
        ("snr_plus_one", lambda s: s + 1),
        ("flow_velocity", lambda s: (1 + s.sqrt()) ** 2),
        ("min_snr", lambda s: torch.minimum(s, torch.full_like(s, 5.0))),
        ("max_snr", lambda s: torch.maximum(s, torch.full_like(s, 5.0))),
        ("soft_min_snr", lambda s: s * 5 / (s + 5)),
        ("p2", lambda s: s / (1 + s)),
        ("edm", lambda s: s + 4),
        ("debiased", lambda s: s.sqrt()),
        ("sigmoid", lambda s: s * torch.sigmoid(-s.log())),
    ],
)
def test_x0_weights_match_the_reference_table(name, expected_x0):
    # A log-SNR density of 1 makes the sigmoid's per-sample weight its per-unit-λ weight; the others ignore it.
    ones = torch.ones_like(SNRS)
    assert torch.allclose(loss_weight(name, SNRS, "x0", log_snr_density=ones), expected_x0(SNRS), rtol=1e-10)


def test_sigmoid_is_kingma_and_gaos_weight_per_unit_log_snr():
    """Their loss weights ε errors by w(λ)·(−dλ/dt) = w(λ)/p(λ) under uniform t, so the effective weight w_ε·p is the
    sigmoid itself, on every schedule."""
    for name in ("cosine", "linear"):
        schedule = get_schedule(name, 1000)
        expected = torch.sigmoid(1.5 - schedule.log_snr)
        assert torch.allclose(effective_weight("sigmoid", schedule, bias=1.5), expected, rtol=1e-9)
        per_sample = schedule_weights("sigmoid", schedule, "eps", bias=1.5)
        assert torch.allclose(per_sample, expected / schedule.log_snr_density(), rtol=1e-9)
    with pytest.raises(ValueError, match="per unit log-SNR.*log_snr_density"):
        loss_weight("sigmoid", SNRS, "eps")
    with pytest.raises(ValueError, match="shape"):
        loss_weight("sigmoid", SNRS, "eps", log_snr_density=torch.ones(3))


def test_min_snr_in_each_space():
    gamma = 5.0
    assert torch.allclose(loss_weight("min_snr", SNRS, "eps"), torch.clamp(gamma / SNRS, max=1.0))
    assert torch.allclose(loss_weight("min_snr", SNRS, "v"), torch.clamp(SNRS, max=gamma) / (SNRS + 1))
    # Every strategy's v weight is its x0 weight over SNR + 1 (the v error is √(SNR + 1) times the x0 error), the
    # conversion the port bug min(SNR, γ)/SNR for v-prediction leaves out (diffusers #5654).
    for name in STRATEGIES.names():
        if not STRATEGIES.get(name).per_unit_log_snr:
            assert torch.allclose(loss_weight(name, SNRS, "v") * (SNRS + 1), loss_weight(name, SNRS, "x0")), name


def test_gamma_defaults_to_five_and_changes_the_weight():
    assert torch.equal(loss_weight("min_snr", SNRS, "eps"), loss_weight("min_snr", SNRS, "eps", gamma=5))
    assert not torch.equal(loss_weight("min_snr", SNRS, "eps"), loss_weight("min_snr", SNRS, "eps", gamma=1))


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from([(4, 3), (2, 1, 5, 5), (3, 2, 4)]),
    seed=st.integers(0, 2**31 - 1),
    log_snr=st.floats(-8, 8),
)
def test_mse_identities_between_spaces(shape, seed, log_snr):
    generator = torch.Generator().manual_seed(seed)
    x0, noise, guess = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3))
    snr = torch.full((shape[0],), math.exp(log_snr), dtype=torch.float64)
    alpha, sigma = (snr / (1 + snr)).sqrt(), (1 / (1 + snr)).sqrt()
    x_t = q_sample(x0, noise, alpha, sigma)
    predicted = convert_prediction(guess, "eps", x_t, alpha, sigma)
    targets = {t: training_target(t, x0, noise, alpha, sigma) for t in TARGETS}
    err = {t: (targets[t] - predicted[t]).pow(2).flatten(1).sum(1) for t in TARGETS}
    assert torch.allclose(err["eps"], snr * err["x0"], rtol=1e-7, atol=1e-9)
    assert torch.allclose(err["v"], (snr + 1) * err["x0"], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("source", TARGETS)
def test_same_output_gives_same_weighted_loss_in_every_space(name, source):
    generator = torch.Generator().manual_seed(0)
    batch = 64
    x0 = torch.randn(batch, 1, 6, 6, generator=generator, dtype=torch.float64)
    noise = torch.randn(batch, 1, 6, 6, generator=generator, dtype=torch.float64)
    output = torch.randn(batch, 1, 6, 6, generator=generator, dtype=torch.float64)
    schedule = get_schedule("cosine", 1000)
    t = torch.randint(0, 1000, (batch,), generator=generator)
    alpha, sigma = schedule.alphas[t], schedule.sigmas[t]
    x_t = q_sample(x0, noise, alpha, sigma)
    as_all = convert_prediction(output, source, x_t, alpha, sigma)
    losses = {
        space: weighted_mse(as_all[space], training_target(space, x0, noise, alpha, sigma),
                            schedule_weights(name, schedule, space)[t])[0].item()
        for space in TARGETS
    }
    assert losses["eps"] == pytest.approx(losses["x0"], rel=1e-6)
    assert losses["v"] == pytest.approx(losses["x0"], rel=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_zero_snr_never_gives_nan_or_inf(name):
    schedule = get_schedule("linear", 1000, zero_terminal_snr=True)
    snr = schedule.snr
    if STRATEGIES.get(name).per_unit_log_snr:  # divides by the log-SNR density, 0 where λ = −∞
        for target in TARGETS:
            with pytest.raises(ValueError, match="not defined where λ is not finite"):
                schedule_weights(name, schedule, target)
        return
    for target in ("x0", "v"):
        assert torch.isfinite(loss_weight(name, snr, target)).all()
    limit = eps_weight_at_zero_snr(name)
    if limit is None:
        with pytest.raises(ValueError, match="unbounded"):
            loss_weight(name, snr, "eps")
    else:
        weights = loss_weight(name, snr, "eps")
        assert torch.isfinite(weights).all()
        assert weights[-1].item() == limit
        # The stored limit agrees with the x0 formula divided by a tiny SNR.
        tiny = torch.tensor([1e-12], dtype=torch.float64)
        assert (loss_weight(name, tiny, "x0") / tiny).item() == pytest.approx(limit, rel=1e-6)


def test_unbounded_strategies_really_blow_up():
    tiny = torch.tensor([1e-12], dtype=torch.float64)
    for name in ALL:
        if eps_weight_at_zero_snr(name) is None and not STRATEGIES.get(name).per_unit_log_snr:
            assert loss_weight(name, tiny, "eps").item() > 1e5


def test_min_snr_eps_weight_at_zero_is_one():
    assert loss_weight("min_snr", torch.tensor([0.0, 10.0]), "eps").tolist() == [1.0, 0.5]


def test_effective_weight_is_finite_and_nonnegative():
    for zero in (False, True):
        schedule = get_schedule("cosine", 1000, zero_terminal_snr=zero)
        for name in ALL:
            values = effective_weight(name, schedule)
            assert torch.isfinite(values).all() and (values >= 0).all()


def test_clamp_region():
    snr = get_schedule("cosine").snr
    assert int(min_snr_clamp_active(snr, 5).sum()) == 261


def test_accepts_numpy_and_floats():
    assert loss_weight("min_snr", np.array([10.0]), "x0").item() == 5.0
    assert loss_weight("snr", 3.0, "x0").item() == 3.0


@pytest.mark.parametrize("gamma", [0, -1, float("nan"), float("inf"), "abc", None])
def test_bad_gamma_names_parameter(gamma):
    with pytest.raises(ValueError, match="gamma"):
        loss_weight("min_snr", SNRS, "eps", gamma=gamma)


def test_bad_names_and_targets():
    with pytest.raises(ValueError, match="unknown weighting strategy 'fancy'.*min_snr"):
        loss_weight("fancy", SNRS)
    with pytest.raises(ValueError, match="target must be one of eps, x0, v"):
        loss_weight("min_snr", SNRS, "score")
    with pytest.raises(ValueError, match="unknown parameter"):
        loss_weight("snr", SNRS, gamma=5)
    with pytest.raises(ValueError, match="k"):
        loss_weight("p2", SNRS, k=0)
    with pytest.raises(ValueError, match="snr"):
        loss_weight("snr", torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="snr"):
        loss_weight("snr", torch.tensor([-1.0]))
