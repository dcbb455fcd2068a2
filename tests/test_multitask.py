"""The multi-task view: task gradients in the model's own space, MGDA's min-norm weights, weighted-loss shares."""

import math

import pytest
import torch

from minsnr_core.diffusion import Diffusion, q_sample, training_target
from minsnr_core.models import build_model
from minsnr_core.multitask import (
    bucket_bounds,
    bucket_gradients,
    bucket_weights,
    min_norm_weights,
    project_to_simplex,
    task_gradient,
    weighted_loss_shares,
)
from minsnr_core.schedules import get_schedule
from minsnr_core.weighting import loss_weight


class Zero(torch.nn.Module):
    """Predicts 0 whatever the input; one parameter so that a gradient exists."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        return self.scale * x


@pytest.mark.parametrize("target", ["eps", "x0", "v"])
def test_task_loss_is_in_the_models_own_target_space(target):
    """A model predicting 0 has loss mean(target²): the x0 images' for x0, the noise's for ε — not ε's for every model
    (notebook 04 once scored an x0 model with the ε loss)."""
    diffusion = Diffusion(get_schedule("cosine", 100), target, "min_snr")
    generator = torch.Generator().manual_seed(0)
    x0 = torch.full((8, 1, 4, 4), 0.5)
    noise = torch.randn(x0.shape, generator=generator) * 2
    t = torch.randint(0, 100, (8,), generator=generator)
    loss, gradient = task_gradient(Zero(), diffusion, x0, t, noise)
    expected = training_target(target, x0, noise, diffusion.alphas[t].float(), diffusion.sigmas[t].float()).pow(2).mean()
    assert loss == pytest.approx(float(expected), rel=1e-5)
    # d/ds mean((s·x_t − y)²) at s = 0 is −2·mean(x_t·y)
    x_t = q_sample(x0, noise, diffusion.alphas[t].float(), diffusion.sigmas[t].float())
    y = training_target(target, x0, noise, diffusion.alphas[t].float(), diffusion.sigmas[t].float())
    assert gradient.item() == pytest.approx(float(-2 * (x_t * y).mean()), rel=1e-5)


def test_bucket_gradients_on_a_real_unet(data_root):
    from minsnr_core.data import load_mnist

    x0 = load_mnist(data_root, train=False, download=False)[:6]
    torch.manual_seed(0)
    model = build_model("mnist", 1)
    diffusion = Diffusion(get_schedule("cosine", 1000), "x0", "min_snr")
    G, t, losses = bucket_gradients(model, diffusion, x0, 4, torch.Generator().manual_seed(0))
    assert G.shape == (4, sum(p.numel() for p in model.parameters()))
    assert torch.isfinite(G).all() and (G.norm(dim=1) > 0).all()
    for b, (start, stop) in enumerate(bucket_bounds(1000, 4)):
        assert ((t[b] >= start) & (t[b] < stop)).all()
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)


def test_min_norm_weights_of_two_orthogonal_gradients():
    """Known answer: w = (b², a²)/(a² + b²) for orthogonal gradients of norms a and b."""
    a, b = 3.0, 1.0
    weights = min_norm_weights(torch.tensor([[a, 0.0, 0.0], [0.0, b, 0.0]]))
    assert weights.tolist() == pytest.approx([b**2 / (a**2 + b**2), a**2 / (a**2 + b**2)], abs=1e-8)


def test_min_norm_weights_of_opposite_gradients_cancel():
    weights = min_norm_weights(torch.tensor([[1.0, 2.0], [-2.0, -4.0]]))
    combined = weights @ torch.tensor([[1.0, 2.0], [-2.0, -4.0]], dtype=torch.float64)
    assert combined.norm() < 1e-6 and weights.tolist() == pytest.approx([2 / 3, 1 / 3], abs=1e-6)


def test_min_norm_weights_meet_the_optimality_conditions():
    """At the min-norm point d = Σ w_i g_i every task has g_i·d ≥ ‖d‖², with equality where w_i > 0."""
    generator = torch.Generator().manual_seed(1)
    gradients = torch.randn(10, 40, generator=generator) + 2 * torch.randn(1, 40, generator=generator)
    weights = min_norm_weights(gradients)
    assert weights.sum().item() == pytest.approx(1.0) and (weights >= 0).all()
    d = gradients.double().T @ weights
    slack = gradients.double() @ d - d @ d
    assert (slack > -1e-6).all()
    assert slack[weights > 1e-6].abs().max() < 1e-6
    assert (weights < 1e-9).any(), "this case has inactive tasks"


def test_min_norm_weights_refuse_bad_input():
    with pytest.raises(ValueError, match="gradients must be"):
        min_norm_weights(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        min_norm_weights(torch.tensor([[float("nan"), 1.0]]))


def test_projection_onto_the_simplex():
    assert project_to_simplex(torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)).tolist() == pytest.approx([0.2, 0.3, 0.5])
    assert project_to_simplex(torch.tensor([2.0, 0.0], dtype=torch.float64)).tolist() == pytest.approx([1.0, 0.0])
    assert project_to_simplex(torch.tensor([1.0, 1.0], dtype=torch.float64)).tolist() == pytest.approx([0.5, 0.5])


def test_bucket_weights_are_the_strategys_weight_in_the_models_space():
    diffusion = Diffusion(get_schedule("cosine", 1000), "v", "min_snr")
    t = torch.tensor([[0, 10], [900, 999]])
    expected = loss_weight("min_snr", diffusion.schedule.snr[t], "v", gamma=2.0).mean(dim=1)
    assert torch.equal(bucket_weights("min_snr", diffusion, t, gamma=2.0), expected)
    eps = loss_weight("min_snr", diffusion.schedule.snr[t], "eps", gamma=2.0).mean(dim=1)
    assert torch.equal(bucket_weights("min_snr", diffusion, t, target="eps", gamma=2.0), eps)


def test_weighted_loss_shares_expose_the_last_cosine_step():
    """Constant-x0 in ε space weights t = T−1 by 1/SNR ≈ 4e8: with equal unweighted losses it carries nearly all."""
    diffusion = Diffusion(get_schedule("cosine", 1000), "eps", "snr")
    steps = torch.arange(1000)
    shares = weighted_loss_shares(torch.ones(1000, dtype=torch.float64), steps, diffusion, "constant")
    assert shares.sum().item() == pytest.approx(1.0)
    assert shares[-1] > 0.9
    plain = weighted_loss_shares(torch.ones(1000, dtype=torch.float64), steps, diffusion, "snr")
    assert plain.max().item() == pytest.approx(1e-3)
