import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minsnr_core.data import TOY_DATASETS, DataUnavailableError, load_cifar10, load_dataset, load_labels, load_mnist
from minsnr_core.metrics import image_score, mnist_score, real_data_floor, toy_score
from minsnr_core.recorder import read_metrics

from .cli_run import run_cli


def cli(*args, check=True, process=False):
    result = run_cli(*args, process=process)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def test_train_and_sample_cli_end_to_end_on_a_toy(tmp_path):
    out = tmp_path / "run"
    cli("train", "--dataset", "moons", "--steps", "60", "--preview-every", "30", "--out", str(out))
    records = read_metrics(out)
    assert [r["step"] for r in records if r["kind"] == "log"] == list(range(5, 65, 5))  # toys log every 5 steps
    assert (out / "samples.png").stat().st_size > 100 and (out / "checkpoint.pt").exists()
    cli("sample", "--run", str(out), "--n", "7", "--out", str(tmp_path / "s.npy"), "--sample-steps", "10")
    points = np.load(tmp_path / "s.npy")
    assert points.shape == (7, 2) and np.isfinite(points).all()
    result = cli("sample", "--run", str(out), "--label", "1", "--out", str(tmp_path / "l.npy"), check=False)
    assert result.returncode == 2 and "trained without class labels" in result.stderr
    # --resume continues the same run up to the new total.
    cli("train", "--resume", str(out), "--steps", "80", "--out", str(out))
    assert [r["step"] for r in read_metrics(out) if r["kind"] == "log"][-5:] == [60, 65, 70, 75, 80]


def test_train_and_sample_cli_on_real_mnist(tmp_path, data_root):
    out = tmp_path / "mnist"
    # Both tools as real processes once, as a user runs them; the other calls in this process.
    cli("train", "--dataset", "mnist", "--data-root", str(data_root), "--steps", "4", "--batch-size", "8",
        "--preview-every", "4", "--weighting", "soft_min_snr", "--gamma", "3", "--target", "v", "--out", str(out),
        process=True)
    for sampler in ("ddim", "ddpm"):
        cli("sample", "--run", str(out), "--n", "3", "--sampler", sampler, "--sample-steps", "4",
            "--out", str(tmp_path / f"{sampler}.npy"), process=sampler == "ddim")
        images = np.load(tmp_path / f"{sampler}.npy")
        assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    # A class-conditional run (MNIST has labels): one digit, any guidance; labels it does not have are refused.
    cli("sample", "--run", str(out), "--n", "2", "--label", "7", "--guidance", "3", "--sample-steps", "3",
        "--batch", "1", "--out", str(tmp_path / "sevens.npy"))
    assert np.load(tmp_path / "sevens.npy").shape == (2, 28, 28)
    result = cli("sample", "--run", str(out), "--label", "10", "--out", str(tmp_path / "z.npy"), check=False)
    assert result.returncode == 2 and "--label must be in [0, 9]" in result.stderr
    # Without label dropout there is no unconditional mode to guide with: refused, not silently wrong.
    plain = tmp_path / "no-dropout"
    cli("train", "--dataset", "mnist", "--data-root", str(data_root), "--steps", "2", "--batch-size", "4",
        "--preview-every", "0", "--label-dropout", "0", "--guidance", "1", "--out", str(plain))
    result = cli("sample", "--run", str(plain), "--n", "2", "--guidance", "2", "--out", str(tmp_path / "g.npy"),
                 check=False)
    assert result.returncode == 2 and "no unconditional mode" in result.stderr


def test_cli_reports_bad_input_clearly(tmp_path):
    result = cli("train", "--dataset", "moons", "--weighting", "snr", "--gamma", "5", "--out", str(tmp_path),
                 check=False)
    assert result.returncode == 2 and "unknown parameter" in result.stderr and "gamma" in result.stderr
    result = cli("train", "--dataset", "mnist", "--data-root", str(tmp_path), "--no-download", "--out",
                 str(tmp_path / "x"), check=False)
    assert result.returncode == 2 and "MNIST not found" in result.stderr
    result = cli("sample", "--run", str(tmp_path), "--out", str(tmp_path / "y.npy"), check=False)
    assert result.returncode == 2 and "no checkpoint" in result.stderr
    result = cli("train", "--dataset", "moons", "--guidance", "-1", "--out", str(tmp_path / "g"), check=False)
    assert result.returncode == 2 and "guidance must be a number ≥ 0" in result.stderr


def test_missing_data_without_internet_is_a_clear_error_not_a_hang(tmp_path):
    with pytest.raises(DataUnavailableError, match="data_root"):
        load_dataset("mnist", tmp_path, download=False)
    with pytest.raises(DataUnavailableError, match="toy dataset"):
        load_dataset("cifar10", tmp_path / "empty", download=True)  # no internet here: fails, names the way out
    with pytest.raises(ValueError, match="needs a data_root"):
        load_dataset("mnist", None)


def test_real_data_loads_as_tensors_in_unit_range(data_root):
    mnist = load_mnist(data_root)
    assert mnist.shape == (60_000, 1, 28, 28) and mnist.min() == -1 and mnist.max() == 1
    cifar = load_cifar10(data_root)
    assert cifar.shape == (4000, 3, 32, 32) and -1 <= cifar.min() < cifar.max() <= 1
    folder = load_dataset("folder", data_root / "cifar10-subset" / "test", image_size=16)
    assert folder.shape == (1000, 3, 16, 16)


@pytest.mark.parametrize("name", TOY_DATASETS.names())
def test_toys_are_reproducible_and_of_unit_scale(name):
    a, b = load_dataset(name, toy_size=500, seed=3), load_dataset(name, toy_size=500, seed=3)
    assert torch.equal(a, b) and a.shape == (500, 2) and a.abs().max() < 3.5 and 0.3 < a.std() < 2


def test_mnist_metric_tells_real_digits_from_noise_and_blur(data_root):
    real = load_mnist(data_root, train=False)[:500]
    noise = torch.rand(500, 1, 28, 28) * 2 - 1
    blurred = F.avg_pool2d(F.pad(real, (2, 2, 2, 2), mode="replicate"), 5, 1)
    real_score, noise_score, blur_score = (mnist_score(x, data_root) for x in (real, noise, blurred))
    assert real_score["confident"] > 0.85 and real_score["label_entropy"] > 3.2
    assert noise_score["confident"] < 0.05 and noise_score["fd"] > 20 * real_score["fd"]
    assert blur_score["confident"] < 0.3 and blur_score["fd"] > 10 * real_score["fd"]
    # Asked for their true labels, real digits are recognised as asked; asked for shifted labels, almost never.
    labels = load_labels("mnist", data_root, train=False)[:500]
    assert mnist_score(real, data_root, labels)["as_requested"] > 0.85
    assert mnist_score(real, data_root, (labels + 1) % 10)["as_requested"] < 0.02
    with pytest.raises(ValueError, match="one class per sample"):
        mnist_score(real, data_root, labels[:3])
    collapsed = mnist_score(real[real.flatten(1).mean(1).argsort()[:100]].repeat(2, 1, 1, 1), data_root)
    assert collapsed["label_entropy"] < real_score["label_entropy"]


def test_cifar_metric_tells_real_images_from_noise_and_blur(data_root):
    labels = load_labels("cifar10", data_root, train=False)
    assert labels.shape == (1000,) and set(labels.tolist()) == set(range(10))
    real = load_cifar10(data_root, train=False)[:500]
    noise = torch.rand(500, 3, 32, 32) * 2 - 1
    blurred = F.avg_pool2d(F.pad(real, (2, 2, 2, 2), mode="replicate"), 5, 1)
    real_score, noise_score, blur_score = (image_score(x, "cifar10", data_root) for x in (real, noise, blurred))
    assert real_score["label_entropy"] > 3.0 and noise_score["confident"] < 0.05
    assert noise_score["fd"] > 10 * real_score["fd"] and blur_score["fd"] > 3 * real_score["fd"]
    with pytest.raises(ValueError, match=r"shape \(N, 3, 32, 32\)"):
        image_score(real[:, :1], "cifar10", data_root)
    with pytest.raises(ValueError, match="dataset must be one of mnist, cifar10"):
        image_score(real, "folder", data_root)


def test_cifar_has_no_real_data_floor_because_its_classifier_learned_the_training_images(data_root):
    with pytest.raises(ValueError, match="cifar10 has no real-data floor: its classifier was trained"):
        real_data_floor("cifar10", data_root, 1000)


def test_toy_metric_tells_the_distribution_from_noise():
    good = toy_score(load_dataset("moons", toy_size=2000, seed=5), "moons")["swd"]
    bad = toy_score(torch.randn(2000, 2), "moons")["swd"]
    assert good < 0.25 * bad


def test_classifier_cache_key_is_the_same_in_every_process():
    """A key that changed per process (e.g. through a memory address) would retrain the classifier on every run."""
    from minsnr_core.metrics import _cache_key

    probe = "import torch; from minsnr_core.metrics import _cache_key; "
    for dataset in ("mnist", "cifar10"):
        images = torch.linspace(-1, 1, 48).reshape(1, 3, 4, 4)
        code = probe + f"print(_cache_key({dataset!r}, torch.linspace(-1, 1, 48).reshape(1, 3, 4, 4)))"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        assert other.stdout.strip() == _cache_key(dataset, images)
        assert _cache_key(dataset, images) != _cache_key(dataset, images.flip(-1))  # the data is part of the key
