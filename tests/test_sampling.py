import pytest
import torch

from minsnr_core.diffusion import Diffusion
from minsnr_core.models import build_model, count_parameters
from minsnr_core.sampling import balanced_labels, ddim_sample, ddpm_sample, sample, sampling_timesteps
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


@pytest.mark.parametrize(("preset", "shape", "parameters"), [
    ("mnist", (2, 1, 28, 28), 1_064_228), ("cifar", (2, 3, 32, 32), 4_249_164),
    ("mnist-large", (2, 1, 28, 28), 2_597_828), ("mnist-small", (2, 1, 28, 28), 268_180),
    ("toy-mlp", (5, 2), 104_578)])
def test_model_presets_keep_the_input_shape(preset, shape, parameters):
    """The sizes docs/performance.md quotes (unconditional; a class embedding adds (K + 1) × width)."""
    model = build_model(preset, shape[1])
    out = model(torch.randn(shape), torch.randint(0, 1000, (shape[0],)))
    assert out.shape == shape and count_parameters(model) == parameters


@pytest.fixture(scope="module")
def conditional_model():
    """A class-conditional UNet whose zero-initialised weights (blocks' last convs, head, class embedding) are made
    random, so that labels change its predictions."""
    torch.manual_seed(7)
    model = build_model("mnist", 1, num_classes=10).eval()
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() > 1 and not weight.any():
                weight.normal_(0, 0.05)
        model.class_embedding.weight.normal_(0, 1.0)
    return model


def test_guidance_mixes_the_conditional_and_unconditional_predictions(conditional_model):
    diffusion = Diffusion(get_schedule("cosine", 100), "x0")
    shape, labels = (4, 1, 12, 12), torch.tensor([0, 3, 3, 9])

    def draw(steps=6, **kwargs):
        return ddim_sample(conditional_model, diffusion, shape, steps, generator=torch.Generator().manual_seed(1),
                           **kwargs)[0]

    unconditional = draw()
    # w = 0 is the unconditional model, w = 1 the plain conditional one; labels change the result.
    assert torch.allclose(draw(labels=labels, guidance=0.0), unconditional, atol=1e-5)
    conditional = draw(labels=labels, guidance=1.0)
    assert not torch.allclose(conditional, unconditional, atol=1e-3)
    assert not torch.allclose(draw(labels=torch.tensor([1, 4, 4, 8]), guidance=1.0), conditional, atol=1e-3)
    # One unclipped step from pure noise returns the (x0-)prediction itself: uncond + w·(cond − uncond).
    one_step = {w: draw(1, labels=labels, guidance=w, clip=None) for w in (0.0, 1.0, 3.0)}
    expected = one_step[0.0] + 3.0 * (one_step[1.0] - one_step[0.0])
    assert torch.allclose(one_step[3.0], expected, atol=1e-4)
    assert balanced_labels(12, 10).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1] and balanced_labels(3, 0) is None


def test_labels_and_guidance_are_checked(conditional_model, models_by_target):
    diffusion = Diffusion(get_schedule("cosine", 100), "x0")
    shape = (2, 1, 12, 12)
    with pytest.raises(ValueError, match="trained without class labels"):
        ddim_sample(models_by_target["x0"], diffusion, shape, 3, labels=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 9\]"):
        ddim_sample(conditional_model, diffusion, shape, 3, labels=torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="shape"):
        ddim_sample(conditional_model, diffusion, shape, 3, labels=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="guidance must be a number ≥ 0"):
        ddim_sample(conditional_model, diffusion, shape, 3, labels=torch.tensor([1, 2]), guidance=-1.0)
    with pytest.raises(ValueError, match="only the image models take labels"):
        build_model("toy-mlp", 2, num_classes=3)


def test_sample_in_batches_draws_the_same_as_batch_by_batch(conditional_model):
    diffusion = Diffusion(get_schedule("cosine", 100), "x0")
    labels = torch.tensor([0, 1, 2, 3, 4])
    common = dict(eta=1.0, guidance=2.0)
    whole, none = sample(conditional_model, diffusion, (5, 1, 12, 12), "ddim", 4, batch=2, labels=labels,
                         generator=torch.Generator().manual_seed(5), **common)
    generator = torch.Generator().manual_seed(5)
    by_hand = torch.cat([ddim_sample(conditional_model, diffusion, (len(part), 1, 12, 12), 4, labels=part,
                                     generator=generator, **common)[0] for part in labels.split(2)])
    assert none is None and whole.shape == (5, 1, 12, 12) and torch.equal(whole, by_hand)
    with pytest.raises(ValueError, match="one batch"):
        sample(conditional_model, diffusion, (5, 1, 12, 12), "ddim", 4, batch=2, return_trajectory=True)
    with pytest.raises(ValueError, match="batch must be an integer"):
        sample(conditional_model, diffusion, (5, 1, 12, 12), "ddim", 4, batch=0)
