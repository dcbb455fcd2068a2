"""The multi-task view of diffusion training (Hang et al. 2023, arXiv 2303.09556, Sec. 3): each range of
timesteps is a task with its own loss and gradient.

- :func:`task_gradient`: the gradient of one task's *unweighted* loss, in the model's own target space.
- :func:`bucket_gradients`: one such gradient per timestep bucket, from the same images with fresh noise.
- :func:`min_norm_weights`: the Pareto-stationary task weights of MGDA (Désidéri 2012; Sener & Koltun 2018): the
  point of minimum norm in the convex hull of the task gradients. This is how the paper computes the weights that
  Min-SNR-γ approximates.
- :func:`bucket_weights`: a strategy's mean loss weight per bucket, in a target space, for comparison.
- :func:`weighted_loss_shares`: how much of the weighted loss each timestep carries under a weighting.
"""

from __future__ import annotations

import torch

from .diffusion import Diffusion, q_sample, training_target, weighted_mse
from .weighting import schedule_weights


def bucket_bounds(num_timesteps: int, buckets: int) -> list[tuple[int, int]]:
    """[start, stop) of each of ``buckets`` equal ranges of timesteps 0 … T−1."""
    if not 1 <= buckets <= num_timesteps:
        raise ValueError(f"buckets must be in [1, {num_timesteps}], got {buckets}")
    return [(b * num_timesteps // buckets, (b + 1) * num_timesteps // buckets) for b in range(buckets)]


def task_gradient(model: torch.nn.Module, diffusion: Diffusion, x0: torch.Tensor, t: torch.Tensor,
                  noise: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """(unweighted loss, flat gradient) of the MSE in ``diffusion.target`` space, the space the model predicts:
    a gradient of any other space's loss would be that of a loss the model is not trained on."""
    params = [p for p in model.parameters() if p.requires_grad]
    alpha, sigma = diffusion.alphas[t], diffusion.sigmas[t]
    x_t = q_sample(x0, noise, alpha, sigma)
    prediction = model(x_t, t) if labels is None else model(x_t, t, labels)
    target = training_target(diffusion.target, x0, noise, alpha, sigma, diffusion.schedule.process)
    loss, _ = weighted_mse(prediction, target, torch.ones(len(t), device=x0.device))
    grads = torch.autograd.grad(loss, params)
    return float(loss.detach()), torch.cat([g.flatten() for g in grads]).double()


def bucket_gradients(model: torch.nn.Module, diffusion: Diffusion, x0: torch.Tensor, buckets: int,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """(G, t, losses): G[b] is the gradient of bucket b's unweighted loss on the images ``x0`` with fresh noise and
    timesteps drawn uniformly within the bucket; t[b] holds those timesteps."""
    rows, steps, losses = [], [], []
    for start, stop in bucket_bounds(diffusion.num_timesteps, buckets):
        t = torch.randint(start, stop, (len(x0),), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        loss, gradient = task_gradient(model, diffusion, x0, t, noise)
        rows.append(gradient)
        steps.append(t.cpu())
        losses.append(loss)
    return torch.stack(rows), torch.stack(steps), losses


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a_i, b_j) for rows of ``a`` and ``b``."""
    return (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T


def project_to_simplex(v: torch.Tensor) -> torch.Tensor:
    """The closest point of {w ≥ 0, Σw = 1} to ``v`` (Duchi et al. 2008, Fig. 1)."""
    u = v.sort(descending=True).values
    cumulative = u.cumsum(0) - 1
    index = torch.arange(1, len(v) + 1, dtype=v.dtype)
    rho = int((u - cumulative / index > 0).nonzero().max())
    return (v - cumulative[rho] / (rho + 1)).clamp(min=0)


def min_norm_weights(gradients: torch.Tensor, iterations: int = 20000, tolerance: float = 1e-10) -> torch.Tensor:
    """Weights w ≥ 0, Σw = 1, minimising ‖Σ_i w_i g_i‖: MGDA's min-norm point of the convex hull of the task
    gradients (Désidéri 2012; Sener & Koltun 2018, arXiv 1810.04650), the Pareto-stationary weighting the paper
    computes. Rows of ``gradients`` are the tasks' gradients. The paper uses Frank–Wolfe; we solve the same small
    quadratic programme over the Gram matrix by accelerated projected gradient (FISTA), which converges to the
    same point more tightly, and stop when the optimality conditions hold to ``tolerance``.

    For two orthogonal gradients of norms a and b the answer is (b², a²)/(a² + b²): the weaker task gets the larger
    weight, so that the common direction improves both at the same rate."""
    if gradients.dim() != 2 or len(gradients) < 1:
        raise ValueError(f"gradients must be a (tasks, parameters) matrix, got shape {tuple(gradients.shape)}")
    if not torch.isfinite(gradients).all():
        raise ValueError("gradients contain NaN or inf")
    gram = gradients.double() @ gradients.double().T
    scale = float(torch.linalg.eigvalsh(gram).max())
    if scale == 0:
        return torch.full((len(gram),), 1.0 / len(gram), dtype=torch.float64)
    gram = gram / scale  # the same minimiser; step 1 is then safe (Lipschitz constant 1)
    weights = momentum = torch.full((len(gram),), 1.0 / len(gram), dtype=torch.float64)
    speed = 1.0
    for _ in range(iterations):
        previous = weights
        weights = project_to_simplex(momentum - gram @ momentum)
        next_speed = (1 + (1 + 4 * speed**2) ** 0.5) / 2
        momentum = weights + (speed - 1) / next_speed * (weights - previous)
        speed = next_speed
        # Optimality: every task's directional derivative (Gw)_i is ≥ wᵀGw, with equality where w_i > 0.
        towards = gram @ weights
        if float(weights @ towards - towards.min()) < tolerance:
            break
    return weights


def bucket_weights(strategy: str, diffusion: Diffusion, t: torch.Tensor, target: str | None = None,
                   **params: float) -> torch.Tensor:
    """Mean loss weight of ``strategy`` over each bucket's sampled timesteps ``t`` (buckets × batch), in ``target``
    space (default: the model's own)."""
    return schedule_weights(strategy, diffusion.schedule, target or diffusion.target, **params)[t.cpu()].mean(dim=1)


@torch.no_grad()
def per_timestep_loss(model: torch.nn.Module, diffusion: Diffusion, x0: torch.Tensor, timesteps: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
    """The model's mean unweighted loss (in its own target space) at each of ``timesteps``, on the images ``x0``."""
    losses = []
    for step in timesteps.tolist():
        t = torch.full((len(x0),), step, dtype=torch.long, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        alpha, sigma = diffusion.alphas[t], diffusion.sigmas[t]
        prediction = model(q_sample(x0, noise, alpha, sigma), t)
        target = training_target(diffusion.target, x0, noise, alpha, sigma, diffusion.schedule.process)
        losses.append(weighted_mse(prediction, target, torch.ones(len(t), device=x0.device))[0].double().cpu())
    return torch.stack(losses)


def weighted_loss_shares(losses: torch.Tensor, timesteps: torch.Tensor, diffusion: Diffusion, strategy: str,
                         **params: float) -> torch.Tensor:
    """Share of the expected weighted loss that each of ``timesteps`` carries under ``strategy``:
    w_t·ℓ_t / Σ_s w_s·ℓ_s, with ℓ the unweighted loss of a model in ``diffusion.target`` space (uniform t)."""
    weighted = schedule_weights(strategy, diffusion.schedule, diffusion.target, **params)[timesteps] * losses
    return weighted / weighted.sum()
