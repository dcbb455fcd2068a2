"""Who computes what: the public implementations of each weighting, and the port bugs the literature's code has had.

Every line cites a repository with a file and a commit, release or pull request that was read (December 2026); a
statement derived here rather than written in that code says so. :data:`PORT_BUGS` are formulas
:func:`minsnr_core.weight_tables.check_weights` recognises by name in a user's weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .schedules import Schedule
from .weighting import STRATEGIES, loss_weight

# strategy name → (who, how, citation) lines
IMPLEMENTATIONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "min_snr": (
        ("The paper's code", "min(SNR, k)/SNR for ε (`min_snr_k`), min(SNR, k)/(SNR + 1) for v (`vmin_snr_k`, added "
         "after its issue #3; v must be chosen by name, else the ε formula is used), min(SNR, k) for x₀",
         "TiankaiHang/Min-SNR-Diffusion-Training, guided_diffusion/gaussian_diffusion.py, commit 46d0f161 (v), "
         "PR #4 (weight 1 where SNR = 0)"),
        ("diffusers training scripts", "`compute_snr` in training_utils.py; min(SNR, γ)/SNR for ε and "
         "min(SNR, γ)/(SNR + 1) for v since PR #6307 (v0.26.0)",
         "huggingface/diffusers, examples/text_to_image/train_text_to_image.py; issue #5654, PR #6307"),
        ("kohya-ss sd-scripts", "`apply_snr_weight`: min(SNR, γ)/SNR, or /(SNR + 1) with v-prediction (fixed in "
         "PR #934, v0.7.1; the first version was ε-only)", "kohya-ss/sd-scripts, library/custom_train_functions.py"),
        ("SimpleTuner", "min(SNR, γ)/SNR, the divisor SNR + 1 for v-prediction (PR #198)",
         "bghira/SimpleTuner, simpletuner/helpers/models/common.py"),
        ("denoising-diffusion-pytorch", "SNR clamped at γ, then /SNR (ε), as is (x₀), /(SNR + 1) (v); its first "
         "version clamped from below (a max), fixed in v1.5.3 (commit b8f8e40) and in the continuous-time module "
         "by PR #363", "lucidrains/denoising-diffusion-pytorch, denoising_diffusion_pytorch.py"),
        ("OneTrainer", "min(SNR, γ)/SNR, /(SNR + 1) for v (PR #155, modelled on sd-scripts)",
         "Nerogar/OneTrainer, modules/modelSetup/mixin/ModelSetupDiffusionLossMixin.py"),
    ),
    "max_snr": (
        ("The paper's code", "max(SNR, k) in its x₀ branch (`max_snr_k`), the ablation",
         "TiankaiHang/Min-SNR-Diffusion-Training, guided_diffusion/gaussian_diffusion.py"),
    ),
    "soft_min_snr": (
        ("k-diffusion", "`soft-min-snr` weighting (σ·σ_data)²/(σ² + σ_data²)² on its preconditioned target; in x₀ "
         "space 1/(σ² + σ_data²), which is Soft-Min-SNR-γ with γ = 1/σ_data² (a derivation, not stated there)",
         "crowsonkb/k-diffusion, k_diffusion/layers.py, commit c0bf387"),
    ),
    "snr": (
        ("k-diffusion", "`snr` weighting: plain ε-MSE", "crowsonkb/k-diffusion, k_diffusion/layers.py"),
        ("Progressive distillation's code", "`snr`: the ε-MSE",
         "google-research/google-research, diffusion_distillation/diffusion_distillation/dpm.py"),
    ),
    "trunc_snr": (
        ("Progressive distillation's code", "`snr_trunc`: max(x₀-MSE, ε-MSE), which is x₀-MSE · max(SNR, 1)",
         "google-research/google-research, diffusion_distillation/diffusion_distillation/dpm.py"),
        ("The paper's code", "`trunc_snr` = max(SNR, 1) in its x₀ branch",
         "TiankaiHang/Min-SNR-Diffusion-Training, guided_diffusion/gaussian_diffusion.py"),
    ),
    "snr_plus_one": (
        ("Progressive distillation's code", "`v_mse`: the v-MSE, which is x₀-MSE · (SNR + 1)",
         "google-research/google-research, diffusion_distillation/diffusion_distillation/dpm.py"),
    ),
    "p2": (
        ("The P2 paper's code", "1/(k + SNR)^γ on the model's MSE (ε in the paper), defaults k = 1, γ = 0",
         "jychoi118/P2-weighting, guided_diffusion/gaussian_diffusion.py"),
    ),
    "edm": (
        ("NVIDIA's EDM code", "λ(σ) = (σ² + σ_data²)/(σ·σ_data)² on the denoiser's x₀ error, σ_data = 0.5",
         "NVlabs/edm, training/loss.py (EDMLoss)"),
        ("k-diffusion", "`karras` weighting (its default), the same λ(σ)", "crowsonkb/k-diffusion, k_diffusion/layers.py"),
    ),
    "debiased": (
        ("kohya-ss sd-scripts", "`apply_debiased_estimation`: 1/√SNR on the ε loss, SNR capped at 1000 (PR #889, "
         "v0.7.1); a v form added in PR #1715", "kohya-ss/sd-scripts, library/custom_train_functions.py"),
    ),
    "sigmoid": (
        ("BayesFlow", "sigmoid(−λ + 2), that is b = 2; whether it is applied per sample or per unit λ was not "
         "checked here; no code by Kingma & Gao was found",
         "bayesflow-org/bayesflow, bayesflow/networks/diffusion_model/schedules/noise_schedule.py"),
    ),
}


def who_computes(strategy: str) -> str:
    """Markdown lines naming the public implementations of ``strategy`` and how they compute it, with citations;
    empty where none is recorded."""
    STRATEGIES.get(strategy)
    return "\n".join(f"- {who}: {how} *({where})*" for who, how, where in IMPLEMENTATIONS.get(strategy, ()))


def _v_eps_plus_one(schedule: Schedule, target: str, params: dict[str, float]) -> np.ndarray:
    """diffusers PR #5106's v weight: the ε weight min(SNR, γ)/SNR plus 1."""
    return loss_weight("min_snr", schedule.snr, "eps", process=schedule.process, **params).numpy() + 1.0


def _v_snr_plus_one_clamped(schedule: Schedule, target: str, params: dict[str, float]) -> np.ndarray:
    """diffusers PR #5238's v weight: SNR + 1 put through the ε formula, min(SNR + 1, γ)/(SNR + 1)."""
    shifted = schedule.snr.numpy() + 1.0
    return np.minimum(shifted, params["gamma"]) / shifted


@dataclass(frozen=True)
class PortBug:
    """A known way a port got a weighting wrong. ``kind``: "space" (``strategy``'s weight for the ``space`` loss
    applied to the ``target`` loss), "formula" (``formula`` gives the weight it computes on ``target``), "schedule"
    (``strategy`` computed from the SNR of the schedule before (or without) the zero-terminal rescale used in
    training), or "strategy" (the port computes another registry strategy, ``strategy``, in place of ``meant``)."""

    name: str
    kind: str
    strategy: str
    what: str
    citation: str
    space: str | None = None
    target: str | None = None
    meant: str | None = None
    formula: Callable[[Schedule, str, dict[str, float]], np.ndarray] | None = None

    def weights(self, schedule: Schedule, target: str, params: dict[str, float]) -> np.ndarray:
        assert self.formula is not None, f"{self.name} is not a formula bug"
        return self.formula(schedule, target, params)

    def sentence(self) -> str:
        return f"Known port bug, {self.name}: {self.what} ({self.citation})."


PORT_BUGS: tuple[PortBug, ...] = (
    PortBug("ε formula on v", "space", "min_snr",
            "min(SNR, γ)/SNR is Min-SNR's weight for the ε loss; on the v loss the same weighting is "
            "min(SNR, γ)/(SNR + 1)",
            "diffusers train_text_to_image.py before PR #5106 (v0.22.0); sd-scripts before PR #934 (v0.7.1); the "
            "paper's code unless `vmin_snr_` is chosen", space="eps", target="v"),
    PortBug("ε formula on x₀", "space", "min_snr",
            "min(SNR, γ)/SNR is Min-SNR's weight for the ε loss; on the x₀ loss it is min(SNR, γ) itself",
            "diffusers examples/dreambooth/train_dreambooth.py since PR #8466 (v0.32.0) divides the sample-prediction "
            "weight by SNR", space="eps", target="x0"),
    PortBug("ε weight + 1 on v", "formula", "min_snr",
            "min(SNR, γ)/SNR + 1 on the v loss; the v weight is min(SNR, γ)/(SNR + 1)",
            "diffusers PR #5106 (v0.22.0) and #5096; still in train_dreambooth_lora_sdxl.py at commit 58eb52c0",
            target="v", formula=_v_eps_plus_one),
    PortBug("SNR + 1 through the ε formula", "formula", "min_snr",
            "min(SNR + 1, γ)/(SNR + 1) on the v loss; the v weight is min(SNR, γ)/(SNR + 1)",
            "diffusers PR #5238 (v0.22.0), reported in issue #5654, fixed by PR #6307 (v0.26.0)",
            target="v", formula=_v_snr_plus_one_clamped),
    PortBug("a max where the min belongs", "strategy", "max_snr",
            "SNR clamped from below at γ, max(SNR, γ), where Min-SNR clamps from above",
            "denoising-diffusion-pytorch before v1.5.3 (commit b8f8e40), its continuous-time module until PR #363",
            meant="min_snr"),
    PortBug("SNR before the zero-terminal rescale", "schedule", "min_snr",
            "the weight follows the SNR of the schedule before its rescale to zero terminal SNR, not the schedule "
            "the model is trained on", "kohya-ss/sd-scripts issue #1263 (open), again in #1905"),
)
