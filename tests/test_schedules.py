import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minsnr_core.schedules import SCHEDULES, get_schedule, list_schedules


def test_linear_matches_ho_et_al():
    schedule = get_schedule("linear", 1000)
    assert torch.allclose(schedule.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    assert schedule.snr[-1].item() == pytest.approx(4.0e-5, rel=0.02)


def test_cosine_matches_nichol_dhariwal():
    schedule = get_schedule("cosine", 1000)
    s = 0.008
    f = lambda t: math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    # Away from the β clip, ᾱ_t is f(t)/f(0) exactly (index i is step t = i + 1).
    for i in (0, 100, 500, 900):
        assert schedule.alphas_cumprod[i].item() == pytest.approx(f(i + 1) / f(0), rel=1e-9)
    assert schedule.snr[-1].item() == pytest.approx(2.4e-9, rel=0.02)


def test_scaled_linear_and_sigmoid_terminal_snr():
    scaled = get_schedule("scaled_linear", 1000)
    expected = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    assert torch.allclose(scaled.betas, expected)
    assert scaled.snr[-1].item() == pytest.approx(4.7e-3, rel=0.02)
    assert get_schedule("sigmoid", 1000).snr[-1].item() == pytest.approx(3e-7, rel=0.05)


@pytest.mark.parametrize(("name", "steps"), [("linear", 130), ("cosine", 261), ("sigmoid", 267)])
def test_min_snr_clamp_region_matches_reference(name, steps):
    # The reference: with γ = 5 the clamp is active for t < 130 (linear), 261 (cosine), 267 (sigmoid).
    assert int((get_schedule(name, 1000).snr > 5).sum()) == steps


def test_arrays_are_float64_of_length_T():
    schedule = get_schedule("cosine", 50)
    for array in (schedule.betas, schedule.alphas_cumprod, schedule.snr, schedule.log_snr):
        assert array.dtype == torch.float64 and array.shape == (50,)
    assert torch.allclose(schedule.log_snr, schedule.snr.log())


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(SCHEDULES.names()), T=st.integers(2, 3000), zero=st.booleans())
def test_any_T_gives_a_valid_decreasing_schedule(name, T, zero):
    schedule = get_schedule(name, T, zero_terminal_snr=zero)
    snr = schedule.snr
    assert torch.isfinite(schedule.betas).all() and (schedule.betas > 0).all() and (schedule.betas <= 1).all()
    assert (snr[1:] <= snr[:-1]).all(), "SNR must not increase with t"
    assert (snr >= 0).all() and torch.isfinite(snr).all()
    if zero or schedule.process == "rf":  # rectified flow ends in pure noise whatever the flag
        assert snr[-1].item() == 0.0 and schedule.zero_terminal_snr
        assert schedule.alphas_cumprod[0].item() == pytest.approx(get_schedule(name, T).alphas_cumprod[0].item())
    else:
        assert snr[-1].item() > 0


def test_zero_terminal_snr_rescale_keeps_betas_consistent():
    schedule = get_schedule("linear", 1000, zero_terminal_snr=True)
    assert schedule.betas[-1].item() == pytest.approx(1.0)
    assert torch.allclose(torch.cumprod(1 - schedule.betas, 0), schedule.alphas_cumprod)


def test_log_snr_density_integrates_to_one():
    schedule = get_schedule("cosine", 1000)
    lam, density = schedule.log_snr, schedule.log_snr_density()
    integral = torch.trapezoid(density.flip(0), lam.flip(0)).item()
    assert integral == pytest.approx(1.0, abs=0.01)
    # Closed form for the continuous cosine schedule (s → 0): p(λ) = sech(λ/2)/(2π).
    middle = (lam.abs() < 3)
    closed = 1 / torch.cosh(lam[middle] / 2) / (2 * math.pi)
    assert torch.allclose(density[middle], closed, rtol=0.05)


def test_registry_lists_every_schedule_with_its_description():
    entries = list_schedules()
    assert [e.name for e in entries] == ["linear", "cosine", "scaled_linear", "sigmoid", "rectified_flow"]
    for entry in entries:
        assert entry.display_name and entry.latex and entry.description and entry.reference


@pytest.mark.parametrize("bad", [1, 0, -5, 2.5, "10", True, None])
def test_bad_num_timesteps_names_the_parameter(bad):
    with pytest.raises(ValueError, match="num_timesteps"):
        get_schedule("linear", bad)


def test_unknown_schedule_lists_allowed_names():
    with pytest.raises(ValueError, match="linear, cosine, scaled_linear, sigmoid, rectified_flow"):
        get_schedule("quadratic")


@pytest.mark.parametrize("name", ["cosine", "linear", "rectified_flow"])
@pytest.mark.parametrize("shift", [3.0, 0.5])
def test_the_resolution_shift_moves_every_log_snr_by_minus_two_log_alpha(name, shift):
    plain, shifted = get_schedule(name, 500), get_schedule(name, 500, shift=shift)
    finite = torch.isfinite(plain.log_snr)
    assert torch.equal(finite, torch.isfinite(shifted.log_snr))  # SNR = 0 stays 0
    assert (shifted.log_snr[finite] - plain.log_snr[finite]).tolist() == pytest.approx(
        [-2 * math.log(shift)] * int(finite.sum()), abs=1e-9)
    assert (shifted.betas > 0).all() and (shifted.betas <= 1).all()
    if name == "rectified_flow":  # SD3 §5.3.2's form: t_m = α·t_n / (1 + (α − 1)·t_n)
        t = plain.times
        assert shifted.times.tolist() == pytest.approx((shift * t / (1 + (shift - 1) * t)).tolist(), abs=1e-12)
    assert torch.equal(get_schedule(name, 500, shift=1.0).alphas_cumprod, plain.alphas_cumprod)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "3", True])
def test_a_bad_shift_names_the_parameter(bad):
    with pytest.raises(ValueError, match="schedule_shift must be a number > 0"):
        get_schedule("cosine", 100, shift=bad)
