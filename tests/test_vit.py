"""The paper's backbone: a vanilla ViT with time and class as input tokens, trained, saved, resumed and sampled like
the UNets, on real MNIST."""

import pytest
import torch

from minsnr_core.data import load_labels, load_mnist
from minsnr_core.models import ViT, build_model, count_parameters
from minsnr_core.runs import load_run
from minsnr_core.training import TrainConfig, train


def randomised(model: ViT) -> ViT:
    """The ViT with its zero-initialised un-patchify layer made random, so that its inputs show in its output."""
    torch.manual_seed(3)
    torch.nn.init.normal_(model.unpatchify.weight, std=0.5)
    return model.eval()


@pytest.mark.parametrize(("preset", "shape", "parameters"), [
    ("vit-mnist", (2, 1, 28, 28), 1_233_552), ("vit-cifar", (2, 3, 32, 32), 2_774_832),
    ("vit-large", (2, 3, 32, 32), 21_698_316)])
def test_vit_presets_keep_the_input_shape_and_start_at_zero(preset, shape, parameters):
    model = build_model(preset, shape[1], image_size=shape[2:])
    out = model(torch.randn(shape), torch.randint(0, 1000, (shape[0],)))
    assert out.shape == shape and count_parameters(model) == parameters
    assert torch.count_nonzero(out) == 0  # the linear un-patchify layer starts at zero


def test_vit_is_the_papers_design_patches_time_and_class_tokens_and_one_position_table():
    model = build_model("vit-mnist", 1, num_classes=10, image_size=(28, 28))
    assert model.grid == (7, 7)
    assert model.position.shape == (1, 2 + 49, 128)  # time token, class token, 49 patch tokens
    assert not any("ada" in name or "modulation" in name for name, _ in model.named_modules())
    assert isinstance(model.unpatchify, torch.nn.Linear)
    model = randomised(model)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 10])
    with torch.no_grad():
        base = model(x, t, torch.tensor([3, 3]))
        assert not torch.allclose(base, model(x, torch.tensor([900, 900]), torch.tensor([3, 3])))  # time matters
        assert not torch.allclose(base, model(x, t, torch.tensor([7, 7])))  # the label matters
        assert not torch.allclose(base, model(x, t))  # no label: the extra "no label" class
        # Each patch's output depends on the other patches through attention (no convolution reaches that far).
        far = x.clone()
        far[..., 24:, 24:] += 1.0
        assert not torch.allclose(model(far, t, torch.tensor([3, 3]))[..., :4, :4], base[..., :4, :4])


def test_vit_pads_an_odd_size_and_names_a_wrong_one():
    model = randomised(ViT(3, (30, 30), patch=4, width=32, depth=1, heads=2))
    assert model.grid == (8, 8)
    assert model(torch.randn(1, 3, 30, 30), torch.tensor([5])).shape == (1, 3, 30, 30)
    with pytest.raises(ValueError, match="built for 30×30 images, got 32×32"):
        model(torch.randn(1, 3, 32, 32), torch.tensor([5]))
    with pytest.raises(ValueError, match="labels given"):
        model(torch.randn(1, 3, 30, 30), torch.tensor([5]), torch.tensor([1]))
    with pytest.raises(ValueError, match="width .* multiple of heads"):
        ViT(1, (28, 28), width=30, heads=4)


def test_vit_trains_on_mnist_saves_resumes_and_samples(data_root, tmp_path):
    data, labels = load_mnist(data_root)[:256], load_labels("mnist", data_root)[:256]
    config = TrainConfig(dataset="mnist", data_root=str(data_root), model="vit-mnist", batch_size=16, steps=30,
                         lr=1e-3, preview_every=0, device="cpu", out_dir=str(tmp_path), seed=1)
    events = list(train(config, data=data, labels=labels))
    losses = [e.loss for e in events if e.kind == "log"]
    assert events[-1].kind == "done" and all(torch.isfinite(torch.tensor(losses)))
    loaded = load_run(tmp_path, "cpu")
    assert isinstance(loaded.model, ViT) and loaded.model.num_classes == 10
    assert torch.count_nonzero(loaded.model.unpatchify.weight) > 0  # it learned
    samples, _ = loaded.sample(4, sampler="ddim", steps=5, seed=0, label=3)
    assert samples.shape == (4, 1, 28, 28) and torch.isfinite(samples).all()
    # Resuming continues the same run with the same model.
    more = list(train(TrainConfig(**{**config.to_dict(), "steps": 40}), data=data, labels=labels, resume=tmp_path))
    assert more[-1].kind == "done" and [e.step for e in more if e.kind == "log"][0] > 30


def test_vit_through_the_cli_on_real_cifar(data_root, tmp_path):
    """A CIFAR-10 ViT run from the command line (its 32×32, 3-channel position table), sampled from the command
    line."""
    import numpy as np

    from .cli_run import run_cli

    out = tmp_path / "cifar-vit"
    result = run_cli("train", "--dataset", "cifar10", "--data-root", data_root, "--model", "vit-cifar", "--steps", "3",
                     "--batch-size", "8", "--preview-every", "0", "--no-download", "--out", out)
    assert result.returncode == 0, result.stderr
    result = run_cli("sample", "--run", out, "--n", "2", "--sample-steps", "3", "--out", tmp_path / "s.npy")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "s.npy").shape == (2, 32, 32, 3)  # saved as images: height, width, channels
