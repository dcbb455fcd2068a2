"""Paired statistics of the experiment grid, on hand-made rows with known answers."""

import math

import pytest
from scipy import stats

from minsnr_core.experiment import BASELINE
from minsnr_core.stats import holm, paired_comparison, paired_speedups, steps_to_reach, t_interval, t_quantile_975


def test_t_interval_matches_a_hand_computation():
    interval = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)  # t_0.975(4) · sd / √n
    assert interval["mean"] == 3.0 and interval["sd"] == pytest.approx(math.sqrt(2.5))
    assert (interval["low"], interval["high"]) == pytest.approx((3 - half, 3 + half))
    assert t_interval([7.0]) == {"mean": 7.0, "low": 7.0, "high": 7.0, "sd": 0.0, "n": 1, "p": None}
    # p of the one-sample t-test: t = 3 / (√2.5 / √5) = 4.243 on 4 df, two-sided.
    assert interval["p"] == pytest.approx(0.01324, abs=1e-4)
    with pytest.raises(ValueError, match="at least one"):
        t_interval([])


def test_t_quantiles_are_students_at_every_df_not_196_above_30():
    assert t_quantile_975(1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile_975(40) == pytest.approx(2.021, abs=1e-3)  # a table cut at 30 answered 1.96 here
    assert t_quantile_975(10_000) == pytest.approx(1.960, abs=1e-3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile_975(0)


def test_holm_adjusts_a_family_step_down():
    """Holm 1979's rule by hand: sorted p (0.01, 0.02, 0.03, 0.04) × (4, 3, 2, 1) = (0.04, 0.06, 0.06, 0.04), made
    non-decreasing: (0.04, 0.06, 0.06, 0.06); results in the input's order; None is no test and not counted."""
    assert holm([0.03, 0.01, None, 0.04, 0.02]) == pytest.approx([0.06, 0.04, None, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []
    with pytest.raises(ValueError, match="p-values must lie in"):
        holm([1.5])


def rows_for(weighting, target, seed, fds, lr=2e-3, group="comparison"):
    return [{"group": group, "weighting": weighting, "target": target, "seed": seed, "lr": lr, "step": step, "fd": fd}
            for step, fd in fds.items()]


def test_paired_differences_cancel_what_the_seeds_share():
    """Seed effects far larger than the weighting's effect: overlapping bands, yet every pair differs by −10."""
    rows = []
    for seed, offset in enumerate([0, 100, 200]):
        rows += rows_for("snr", "eps", seed, {100: 500 + offset, 200: 300 + offset})
        rows += rows_for("min_snr", "eps", seed, {100: 480 + offset, 200: 290 + offset})
    (entry,) = paired_comparison(rows, "fd", BASELINE)
    assert (entry["weighting"], entry["step"], entry["n"]) == ("min_snr", 200, 3)
    assert entry["diff"] == pytest.approx(-10) and entry["low"] == pytest.approx(-10) and entry["high"] == pytest.approx(-10)


def test_paired_comparison_uses_only_seeds_both_arms_ran():
    rows = rows_for("snr", "eps", 0, {100: 50}) + rows_for("snr", "eps", 1, {100: 60})
    rows += rows_for("min_snr", "eps", 1, {100: 40})
    (entry,) = paired_comparison(rows, "fd", BASELINE)
    assert entry["n"] == 1 and entry["diff"] == -20


def test_steps_to_reach_interpolates():
    assert steps_to_reach({100: 10.0, 200: 6.0}, 8.0, higher_is_better=False) == pytest.approx(150)
    assert steps_to_reach({100: 10.0, 200: 9.0}, 8.0, higher_is_better=False) is None
    assert steps_to_reach({100: 0.5}, 0.4, higher_is_better=True) == 100


def test_paired_speedups_per_seed_and_their_geometric_mean():
    rows = []
    for seed in range(3):
        rows += rows_for("snr", "eps", seed, {100: 100, 200: 50, 400: 20})
        rows += rows_for("min_snr", "eps", seed, {100: 60, 200: 20, 400: 10})  # reaches 20 at step 200: 2×
    speed = {r["weighting"]: r for r in paired_speedups(rows, "fd", BASELINE, higher_is_better=False)}
    assert speed["min_snr"]["speedups"] == pytest.approx([2.0, 2.0, 2.0])
    assert speed["min_snr"]["geomean"] == pytest.approx(2.0) and speed["min_snr"]["low"] == pytest.approx(2.0)
    assert speed["snr"]["geomean"] == pytest.approx(1.0)


def test_a_seed_that_never_reaches_the_baseline_leaves_no_interval():
    rows = rows_for("snr", "eps", 0, {100: 50, 200: 20}) + rows_for("min_snr", "eps", 0, {100: 40, 200: 30})
    rows += rows_for("snr", "eps", 1, {100: 50, 200: 20}) + rows_for("min_snr", "eps", 1, {100: 30, 200: 10})
    entry = next(r for r in paired_speedups(rows, "fd", BASELINE, False) if r["weighting"] == "min_snr")
    assert (entry["n"], entry["reached"], entry["geomean"]) == (2, 1, None)
    assert entry["speedups"][0] is None


def test_ratio_of_unpaired_speedups_is_welchs_on_the_log_scale():
    from minsnr_core.stats import ratio_of_speedups

    same = ratio_of_speedups([2.0, 2.0 * math.e], [2.0, 2.0 * math.e])
    assert same["ratio"] == pytest.approx(1.0) and same["p"] == pytest.approx(1.0) and same["low"] < 1 < same["high"]
    # Logs {0, 2} against {1, 3, 5}: difference −2; Welch's se² = 2/2 + 4/3 = 7/3; df = (7/3)² / (1/1 + (4/3)²/2).
    result = ratio_of_speedups([1.0, math.e ** 2], [math.e, math.e ** 3, math.e ** 5])
    se, df = math.sqrt(7 / 3), (7 / 3) ** 2 / (1 + (4 / 3) ** 2 / 2)
    half = stats.t.ppf(0.975, df) * se
    assert result["ratio"] == pytest.approx(math.exp(-2))
    assert result["low"] == pytest.approx(math.exp(-2 - half)) and result["high"] == pytest.approx(math.exp(-2 + half))
    assert result["p"] == pytest.approx(2 * stats.t.sf(2 / se, df))
    with pytest.raises(ValueError, match="at least 2 values on each side"):
        ratio_of_speedups([1.5], [1.2, 1.3])
    with pytest.raises(ValueError, match="positive"):
        ratio_of_speedups([1.5, 0.0], [1.2, 1.3])
