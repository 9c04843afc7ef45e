"""Gaussian diffusion for DreamRec: beta schedules, the forward process and its posterior.

Nothing here knows about recommendation: :class:`GaussianDiffusion` takes tensors and a denoiser callable.
Names follow Ho et al., "Denoising Diffusion Probabilistic Models" (NeurIPS 2020), written DDPM below, and the
DreamRec paper (Yang et al., NeurIPS 2023). All schedule quantities are computed in float64 with numpy and
registered as float32 buffers, so they follow the module across devices.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BETA_SCHEDULES = ("linear", "exp", "cosine", "sqrt")
LOSS_TYPES = ("l2", "l1", "huber", "cosine")
# the training timesteps: all T (uniform, the papers), or only those the inference sampler visits
TRAIN_TIMESTEPS = ("all", "sampler")


def linear_beta_schedule(timesteps, beta_start, beta_end):
    """Betas evenly spaced from ``beta_start`` to ``beta_end`` (DDPM, Sec. 4)."""
    return np.linspace(beta_start, beta_end, timesteps, dtype=np.float64)


def exp_beta_schedule(timesteps, beta_min=0.1, beta_max=10.0):
    """The DreamRec code's ``exp`` schedule: the discretised variance-preserving SDE of Song et al. (2021).

    ``beta_i = 1 - exp(-beta_min / T - x_i (beta_max - beta_min) / (2 T^2))`` with ``x_i`` evenly spaced in
    ``[1, 2T + 1]``.
    """
    x = np.linspace(1, 2 * timesteps + 1, timesteps, dtype=np.float64)
    return 1.0 - np.exp(-beta_min / timesteps - x * 0.5 * (beta_max - beta_min) / (timesteps * timesteps))


def betas_for_alpha_bar(timesteps, alpha_bar, max_beta=0.999):
    """Betas that discretise a continuous ``alpha_bar(t)``, ``t`` in [0, 1] (Nichol & Dhariwal 2021, Eq. 17)."""
    t1 = np.arange(timesteps, dtype=np.float64) / timesteps
    t2 = (np.arange(timesteps, dtype=np.float64) + 1) / timesteps
    return np.minimum(1.0 - alpha_bar(t2) / alpha_bar(t1), max_beta)


def cosine_beta_schedule(timesteps, s=0.008):
    """Cosine schedule (Nichol & Dhariwal 2021, Eq. 17), clipped to [1e-4, 0.9999] as in the DreamRec code."""
    steps = np.linspace(0, timesteps, timesteps + 1, dtype=np.float64)
    alphas_cumprod = np.cos(((steps / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1.0 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return np.clip(betas, 0.0001, 0.9999)


def sqrt_beta_schedule(timesteps):
    """The ``sqrt`` schedule of Li et al. (Diffusion-LM, 2022): ``alpha_bar(t) = 1 - sqrt(t + 1e-4)``."""
    return betas_for_alpha_bar(timesteps, lambda t: 1.0 - np.sqrt(t + 0.0001))


def get_beta_schedule(name, timesteps, beta_start=0.0001, beta_end=0.02):
    """Betas of the named schedule, float64 array of shape ``[timesteps]``.

    ``beta_start`` and ``beta_end`` are used by the ``linear`` schedule only.
    """
    if name == "linear":
        return linear_beta_schedule(timesteps, beta_start, beta_end)
    if name == "exp":
        return exp_beta_schedule(timesteps)
    if name == "cosine":
        return cosine_beta_schedule(timesteps)
    if name == "sqrt":
        return sqrt_beta_schedule(timesteps)
    raise ValueError(f"beta_schedule must be one of {list(BETA_SCHEDULES)}, got {name!r}")


def extract(buffer, t, x_shape):
    """Values of a ``[T]`` buffer at timesteps ``t`` ``[B]``, shaped ``[B, 1, ..., 1]`` to broadcast on x."""
    out = buffer.gather(0, t)
    return out.reshape(t.shape[0], *((1,) * (len(x_shape) - 1)))


class GaussianDiffusion(nn.Module):
    r"""The forward process :math:`q(x_t | x_0)`, its posterior :math:`q(x_{t-1} | x_t, x_0)` and the
    x0-prediction training loss.

    Timesteps are indexed ``0 .. T-1``: index ``t`` holds :math:`\beta_{t+1}` of the papers.

    Args:
        betas (array-like): the noise schedule, shape ``[T]``, each in (0, 1).
    """

    def __init__(self, betas):
        super().__init__()
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise ValueError("betas must be a non-empty 1-D array")
        if not ((betas > 0).all() and (betas <= 1).all()):
            raise ValueError("betas must lie in (0, 1]")
        self.num_timesteps = int(betas.shape[0])

        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])

        buffers = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            # q(x_t | x_0), DDPM Eq. 4
            "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alphas_cumprod),
            # q(x_{t-1} | x_t, x_0), DDPM Eq. 6-7
            "posterior_variance": betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod),
            "posterior_mean_coef1": betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
            "posterior_mean_coef2": (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - alphas_cumprod),
        }
        for name, value in buffers.items():
            # derived from the config, not learned: kept out of the state dict
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32), persistent=False)

    def q_sample(self, x_start, t, noise=None):
        r"""Sample :math:`x_t \sim q(x_t | x_0) = N(\sqrt{\bar\alpha_t} x_0, (1 - \bar\alpha_t) I)` (DDPM Eq. 4)."""
        if noise is None:
            noise = torch.randn_like(x_start)
        return (
            extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
            + extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise
        )

    def q_posterior_mean_variance(self, x_start, x_t, t):
        r"""Mean and variance of :math:`q(x_{t-1} | x_t, x_0)` (DDPM Eq. 6-7)."""
        posterior_mean = (
            extract(self.posterior_mean_coef1, t, x_t.shape) * x_start
            + extract(self.posterior_mean_coef2, t, x_t.shape) * x_t
        )
        posterior_variance = extract(self.posterior_variance, t, x_t.shape)
        return posterior_mean, posterior_variance

    def sample_timesteps(self, batch_size, device, steps=None):
        """Training timesteps drawn uniformly from ``0 .. T-1``, or from ``steps`` (a list of them) when given,
        ``[B]``."""
        if steps is None:
            return torch.randint(0, self.num_timesteps, (batch_size,), device=device)
        steps = torch.as_tensor(steps, dtype=torch.long, device=device)  # [S]
        return steps[torch.randint(0, steps.shape[0], (batch_size,), device=device)]  # [B]

    def training_loss(self, denoise_fn, x_start, t, noise=None, loss_type="l2"):
        r"""The DreamRec objective: noise ``x_start`` to ``x_t`` and regress ``x_start`` from it (x0-prediction).

        Args:
            denoise_fn (callable): ``(x_t [B H], t [B]) -> x0 prediction [B H]``.
            x_start (torch.Tensor): clean samples (target item embeddings), ``[B H]``.
            t (torch.LongTensor): timesteps, ``[B]``.
            noise (torch.Tensor, optional): the Gaussian noise, drawn if omitted.
            loss_type (str): ``l2`` (mean squared error), ``l1``, ``huber`` (smooth L1) or ``cosine``
                (``1 - cos(prediction, x_0)``, as PreferDiff, Liu et al. ICLR 2025).

        Returns:
            torch.Tensor: the scalar loss.
        """
        x_t = self.q_sample(x_start, t, noise)
        predicted_x_start = denoise_fn(x_t, t)
        if loss_type == "l2":
            return F.mse_loss(predicted_x_start, x_start)
        if loss_type == "l1":
            return F.l1_loss(predicted_x_start, x_start)
        if loss_type == "huber":
            return F.smooth_l1_loss(predicted_x_start, x_start)
        if loss_type == "cosine":
            return (1.0 - F.cosine_similarity(predicted_x_start, x_start, dim=-1)).mean()
        raise ValueError(f"diffusion_loss_type must be one of {list(LOSS_TYPES)}, got {loss_type!r}")
