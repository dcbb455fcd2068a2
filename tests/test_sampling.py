import pytest
import torch

from minsnr_core.diffusion import Diffusion
from minsnr_core.models import build_model, count_parameters
from minsnr_core.sampling import ddim_sample, ddpm_sample, sample, sampling_timesteps
from minsnr_core.schedules import get_schedule


@pytest.fixture(scope="module")
def models_by_target():
    """One small UNet per target, with a random (not zero-initialised) output head so predictions vary."""
    models = {}
    for seed, target in enumerate(("eps", "x0", "v")):
        torch.manual_seed(seed)
        model = build_model("mnist", 1).eval()
        with torch.no_grad():
            model.head[-1].weight.normal_(0, 0.05)
        models[target] = model
    return models


@pytest.mark.parametrize("target", ["eps", "x0", "v"])
@pytest.mark.parametrize("zero_snr", [False, True])
def test_samplers_give_shapes_and_ranges_for_every_target(models_by_target, target, zero_snr):
    if zero_snr and target == "eps":
        pytest.skip("zero terminal SNR needs an x0 or v model")
    model = models_by_target[target]
    diffusion = Diffusion(get_schedule("cosine", 100, zero_terminal_snr=zero_snr), target)
    shape = (3, 1, 12, 12)
    x, trajectory = ddim_sample(model, diffusion, shape, 10, generator=torch.Generator().manual_seed(0),
                                return_trajectory=True)
    assert x.shape == shape and torch.isfinite(x).all() and x.abs().max() <= 1.0 + 1e-5
    assert len(trajectory.timesteps) == 10 and trajectory.timesteps[0] == 99 and trajectory.timesteps[-1] == 0
    assert trajectory.x_t[0].shape == shape and trajectory.x0_pred[3].abs().max() <= 1.0
    y, none = ddpm_sample(model, diffusion, shape, generator=torch.Generator().manual_seed(0))
    assert none is None and y.shape == shape and torch.isfinite(y).all()


def test_ddim_is_deterministic_given_the_seed(models_by_target):
    model = models_by_target["v"]
    diffusion = Diffusion(get_schedule("cosine", 100), "v")
    a, _ = ddim_sample(model, diffusion, (2, 1, 12, 12), 8, generator=torch.Generator().manual_seed(3))
    b, _ = ddim_sample(model, diffusion, (2, 1, 12, 12), 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_sampler_arguments_are_checked(models_by_target):
    diffusion = Diffusion(get_schedule("cosine", 100), "eps")
    with pytest.raises(ValueError, match="sampler must be one of ddpm, ddim"):
        sample(models_by_target["eps"], diffusion, (1, 1, 12, 12), "euler")
    with pytest.raises(ValueError, match="sample steps"):
        sampling_timesteps(100, 0)
    with pytest.raises(ValueError, match="eta"):
        ddim_sample(models_by_target["eps"], diffusion, (1, 1, 12, 12), 5, eta=2)
    assert sampling_timesteps(1000, 4) == [999, 666, 333, 0]


@pytest.mark.parametrize(("preset", "shape"), [("mnist", (2, 1, 28, 28)), ("cifar", (2, 3, 32, 32)),
                                                 ("mnist-large", (2, 1, 28, 28)), ("toy-mlp", (5, 2))])
def test_model_presets_keep_the_input_shape(preset, shape):
    model = build_model(preset, shape[1])
    out = model(torch.randn(shape), torch.randint(0, 1000, (shape[0],)))
    assert out.shape == shape and count_parameters(model) > 1000
