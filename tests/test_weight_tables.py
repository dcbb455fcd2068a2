"""Golden weight tables and the check of a user's weights: the numbers against the papers' formulas typed out here,
every known port bug recognised by name, and one clear error per bad file (through the CLI a user runs)."""

import json
import math

import numpy as np
import pytest

from minsnr_core.implementations import IMPLEMENTATIONS, PORT_BUGS, who_computes
from minsnr_core.schedules import get_schedule
from minsnr_core.weight_tables import MAX_ROWS, check_weights, read_weights_csv
from minsnr_core.weighting import STRATEGIES, TARGETS

from .cli_run import run_cli

COSINE = get_schedule("cosine", 1000)
SNR = COSINE.snr.numpy()


def cosine_alpha_bar(t, T=1000, s=0.008):
    """Nichol & Dhariwal 2021, eq. 17, at the end of step t (improved-diffusion's indexing), typed out again here."""
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(t + 1) / f(0)


def weights_file(tmp_path, weights, steps=None, name="weights.csv"):
    steps = range(len(weights)) if steps is None else steps
    path = tmp_path / name
    path.write_text("t,weight\n" + "".join(f"{t},{float(w)!r}\n" for t, w in zip(steps, weights, strict=True)))
    return path


def weights(*args, code=0):
    result = run_cli("weights", *args)
    assert result.returncode == code, result.stderr
    return result


@pytest.mark.parametrize("target,expected", [("eps", lambda snr: min(snr, 5) / snr), ("x0", lambda snr: min(snr, 5)),
                                             ("v", lambda snr: min(snr, 5) / (snr + 1))])
def test_the_golden_table_holds_the_papers_min_snr_weight_in_each_space(target, expected):
    rows = [line.split(",") for line in weights("table", "--strategy", "min_snr", "--target", target).stdout.splitlines()]
    assert rows[0] == ["t", "alpha_bar", "snr", "log_snr", "weight"] and len(rows) == 1001
    for t in (0, 1, 250, 500, 750, 900):
        alpha_bar = cosine_alpha_bar(t)
        snr = alpha_bar / (1 - alpha_bar)
        row = [float(v) for v in rows[t + 1]]
        assert row[0] == t
        assert row[1] == pytest.approx(alpha_bar, rel=1e-12) and row[2] == pytest.approx(snr, rel=1e-10)
        assert row[3] == pytest.approx(math.log(snr), rel=1e-10) and row[4] == pytest.approx(expected(snr), rel=1e-10)


def test_the_json_table_is_the_csv_table_with_its_settings_and_null_where_log_snr_is_minus_infinity(tmp_path):
    out = tmp_path / "table.json"
    weights("table", "--schedule", "linear", "--timesteps", "50", "--zero-terminal-snr", "--target", "v",
            "--strategy", "soft_min_snr", "--gamma", "2", "--format", "json", "--out", out)
    table = json.loads(out.read_text())
    assert table["params"] == {"gamma": 2.0} and table["schedule"] == "linear" and table["zero_terminal_snr"] is True
    csv_rows = weights("table", "--schedule", "linear", "--timesteps", "50", "--zero-terminal-snr", "--target", "v",
                       "--strategy", "soft_min_snr", "--gamma", "2").stdout.splitlines()[1:]
    assert [float(r.split(",")[4]) for r in csv_rows] == table["weight"]
    assert table["log_snr"][-1] is None and table["snr"][-1] == 0.0 and table["weight"][-1] == 0.0


def test_a_table_refuses_a_parameter_of_another_strategy_and_an_undefined_weight_in_one_line():
    assert "--gamma is not a parameter of snr" in weights("table", "--strategy", "snr", "--gamma", "3", code=2).stderr
    assert "parameter 'gamma' must be in (0, 100]" in weights("table", "--strategy", "min_snr", "--gamma", "0", code=2).stderr
    error = weights("table", "--strategy", "constant", "--zero-terminal-snr", code=2).stderr
    assert "unbounded ε-space weight at SNR = 0" in error and len(error.strip().splitlines()) == 1


def min_snr(target, gamma=5.0):
    return {"eps": np.minimum(SNR, gamma) / SNR, "x0": np.minimum(SNR, gamma), "v": np.minimum(SNR, gamma) / (SNR + 1)}[target]


@pytest.mark.parametrize("target", TARGETS)
def test_a_correct_port_is_named_with_its_gamma_even_in_float32(target):
    """A port that computes in float32 is off by up to ~1e-3 at the cleanest steps; it is still Min-SNR-5."""
    snr32 = SNR.astype(np.float32)
    ported = {"eps": np.minimum(snr32, 5) / snr32, "x0": np.minimum(snr32, 5), "v": np.minimum(snr32, 5) / (snr32 + 1)}
    report = check_weights(read_weights_csv("t,weight\n" + "".join(f"{t},{float(w)!r}\n" for t, w in
                                                                    enumerate(ported[target])), 1000), COSINE, target)
    assert report.matches and report.best.strategy == "min_snr" and report.best.space == target and not report.best.bug
    assert report.best.params["gamma"] == pytest.approx(5.0, rel=1e-6) and report.best.scale == 1.0
    assert report.words.startswith("These weights are Min-SNR-γ (gamma = 5)")


@pytest.mark.parametrize("name,weights_of,target", [
    ("ε formula on v", lambda: min_snr("eps"), "v"),
    ("ε formula on x₀", lambda: min_snr("eps"), "x0"),
    ("ε weight + 1 on v", lambda: min_snr("eps") + 1, "v"),
    ("SNR + 1 through the ε formula", lambda: np.minimum(SNR + 1, 5) / (SNR + 1), "v"),
])
def test_each_known_port_bug_is_recognised_by_name_with_its_citation(tmp_path, name, weights_of, target):
    result = weights("check", weights_file(tmp_path, weights_of()), "--target", target)
    bug = next(b for b in PORT_BUGS if b.name == name)
    assert f"Known port bug, {name}:" in result.stdout and bug.citation in result.stdout and "gamma = 5" in result.stdout


def test_a_max_where_the_min_belongs_and_snr_before_the_zero_terminal_rescale_are_named(tmp_path):
    maximum = weights("check", weights_file(tmp_path, np.maximum(SNR, 5) / SNR), "--target", "eps").stdout
    assert "Max-SNR-γ (gamma = 5)" in maximum and "a max where the min belongs" in maximum and "PR #363" in maximum
    before = get_schedule("linear", 1000).snr.numpy()
    stale = weights("check", weights_file(tmp_path, np.minimum(before, 5) / before), "--schedule", "linear",
                    "--zero-terminal-snr", "--target", "eps").stdout
    assert "SNR before the zero-terminal rescale" in stale and "sd-scripts issue #1263" in stale
    # the same weights on the schedule they were computed from are simply correct
    plain = weights("check", weights_file(tmp_path, np.minimum(before, 5) / before), "--schedule", "linear").stdout
    assert plain.startswith("These weights are Min-SNR-γ (gamma = 5)") and "port bug" not in plain


def test_a_factor_a_subset_of_steps_and_other_strategies_are_fitted(tmp_path):
    steps = list(range(0, 1000, 7))
    scaled = weights("check", weights_file(tmp_path, 0.2 * min_snr("eps")[steps], steps)).stdout
    assert scaled.startswith("These weights are 0.2 × Min-SNR-γ (gamma = 5)") and "143 timesteps" in scaled
    p2 = weights("check", weights_file(tmp_path, 1 / (1 + SNR) ** 0.5), "--target", "eps").stdout
    assert p2.startswith("These weights are P2 (k = 1, p2_gamma = 0.5)")


def test_weights_no_strategy_gives_say_where_they_depart_from_the_nearest(tmp_path):
    """Min-SNR-5 with its weights at t = 600–699 doubled: the nearest is Min-SNR-5, departing exactly there (exit 1)."""
    broken = min_snr("eps").copy()
    broken[600:700] *= 2
    result = weights("check", weights_file(tmp_path, broken), code=1)
    assert result.stdout.startswith("No registry weighting matches within 1% in any space. The nearest: Min-SNR-γ")
    assert "Min-SNR-γ (gamma = 5) in ε (noise) space. It departs at t = 600–699 (100 of 1,000 timesteps)" in result.stdout


@pytest.mark.parametrize("text,error", [
    ("", "the weights file is empty"),
    ("step,w\n0,1\n", "line 1 must be a header naming the columns t and weight"),
    ("t,weight\n", "has a header but no rows"),
    ("t,weight\n0,1\n1,abc\n", "row 2 (line 3): weight must be a number, got 'abc'"),
    ("t,weight\n0,1\n1,nan\n", "row 2 (line 3): weight must be a finite number ≥ 0, got 'nan'"),
    ("t,weight\n0,-1\n", "row 1 (line 2): weight must be a finite number ≥ 0"),
    ("t,weight\n0,1\n0,2\n", "row 2 (line 3): t = 0 appears twice (first in row 1)"),
    ("t,weight\n1000,1\n", "row 1 (line 2): t must be a whole number in [0, 999] (T = 1000), got '1000'"),
    ("t,weight\n2.5,1\n", "row 1 (line 2): t must be a whole number in [0, 999]"),
    ("t,weight\n0,1,2\n", "row 1 (line 2) has 3 values; the header names 2 columns"),
    ("t,weight\n" + "0,1\n" * (MAX_ROWS + 1), f"rows; at most {MAX_ROWS:,} are allowed"),
])
def test_each_bad_file_gets_one_clear_error_naming_its_row(tmp_path, text, error):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    stderr = weights("check", path, code=2).stderr
    assert error in stderr and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_a_file_that_is_not_text_or_not_there_is_refused_in_one_line(tmp_path):
    binary = tmp_path / "image.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    assert "is not UTF-8 text" in weights("check", binary, code=2).stderr
    assert "is not a readable file" in weights("check", tmp_path / "missing.csv", code=2).stderr


def test_every_implementation_and_port_bug_names_a_registered_strategy_and_a_source():
    assert set(IMPLEMENTATIONS) <= set(STRATEGIES.names()) and "min_snr" in IMPLEMENTATIONS
    for strategy, lines in IMPLEMENTATIONS.items():
        assert lines and all(who and how and "/" in where for who, how, where in lines), strategy
        assert who_computes(strategy).count("\n- ") == len(lines) - 1
    assert who_computes("flow_velocity") == ""
    for bug in PORT_BUGS:
        STRATEGIES.get(bug.strategy)
        assert bug.citation and bug.kind in {"space", "formula", "schedule", "strategy"}
