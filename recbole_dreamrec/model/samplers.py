"""Reverse-diffusion samplers for x0-predicting denoisers: DDPM ancestral sampling and DDIM.

A sampler takes ``model_fn(x_t [B H], t [B]) -> x0 prediction [B H]`` (with classifier-free guidance already
applied, see :func:`classifier_free_guidance`) and turns Gaussian noise into a sample. Equations cite
Ho et al. 2020 (DDPM), Song et al. 2021 (DDIM, "Denoising Diffusion Implicit Models") and Yang et al. 2023
(DreamRec).
"""

import numpy as np
import torch

SAMPLERS = ("ddpm", "ddim")


def classifier_free_guidance(x_start_cond, x_start_uncond, guidance_weight):
    r"""DreamRec Eq. 13 (Ho & Salimans 2022): :math:`(1 + w) f(x_t, h, t) - w f(x_t, \varnothing, t)`."""
    return (1.0 + guidance_weight) * x_start_cond - guidance_weight * x_start_uncond


def noise_source(device, generator=None, noise=None):
    """``i -> the i-th noise draw`` of a sampling run (draw 0 is x_T, draw k the noise of step k).

    ``noise`` (a callable ``(i, shape, device) -> tensor``, e.g. :class:`recbole_dreamrec.model.noise.KeyedNoise`)
    wins; otherwise the draws come one after another from ``generator`` (``None``: torch's global generator).
    """
    if noise is not None:
        return lambda i, shape: noise(i, shape, device)
    return lambda i, shape: torch.randn(shape, device=device, generator=generator)


class DDPMSampler:
    r"""Ancestral sampling through all ``T`` steps of :math:`p(x_{t-1} | x_t)` (DDPM Alg. 2; DreamRec Alg. 2).

    Args:
        diffusion (GaussianDiffusion): the forward process whose posterior the steps follow.
    """

    def __init__(self, diffusion):
        self.diffusion = diffusion

    @property
    def timesteps(self):
        """The timesteps visited, noisiest first: ``T-1, ..., 0``."""
        return list(range(self.diffusion.num_timesteps - 1, -1, -1))

    def p_sample(self, model_fn, x_t, t, noise):
        r"""One step :math:`x_t \to x_{t-1}`.

        1. Predict :math:`\hat x_0 = f(x_t, t)`.
        2. Posterior mean and variance of :math:`q(x_{t-1} | x_t, \hat x_0)` (DDPM Eq. 7).
        3. :math:`x_{t-1} = \tilde\mu + \sqrt{\tilde\beta_t}\, z`, with no noise at the last step (``t = 0``).
        """
        x_start = model_fn(x_t, t)
        mean, variance = self.diffusion.q_posterior_mean_variance(x_start, x_t, t)
        nonzero = (t != 0).float().view(-1, *([1] * (x_t.dim() - 1)))  # [B 1]
        return mean + nonzero * variance.sqrt() * noise

    @torch.no_grad()
    def sample(self, model_fn, shape, device, generator=None, noise=None):
        """Generate ``x_0`` of ``shape`` from pure Gaussian noise (drawn as :func:`noise_source` says)."""
        draw = noise_source(device, generator, noise)
        x = draw(0, shape)
        for i, step in enumerate(self.timesteps, start=1):
            t = torch.full((shape[0],), step, device=device, dtype=torch.long)
            x = self.p_sample(model_fn, x, t, draw(i, shape))
        return x


class DDIMSampler:
    r"""DDIM sampling over ``sampling_steps`` evenly spaced timesteps (Song et al. 2021, Eq. 12).

    ``eta = 0`` is deterministic given the initial noise; ``eta = 1`` with ``sampling_steps = T`` follows the
    same distribution as :class:`DDPMSampler`.

    Args:
        diffusion (GaussianDiffusion): the forward process.
        sampling_steps (int): K, the number of denoising steps, ``1 <= K <= T``.
        eta (float): the scale of the fresh noise, ``>= 0``.
    """

    def __init__(self, diffusion, sampling_steps, eta=0.0):
        num_timesteps = diffusion.num_timesteps
        if not 1 <= sampling_steps <= num_timesteps:
            raise ValueError(f"sampling_steps must be in [1, timesteps={num_timesteps}], got {sampling_steps}")
        if eta < 0:
            raise ValueError(f"ddim_eta must be >= 0, got {eta}")
        self.diffusion = diffusion
        self.eta = float(eta)
        # K distinct timesteps from T-1 down to 0 (spacing >= 1 since K <= T)
        self.timesteps = [int(s) for s in np.round(np.linspace(num_timesteps - 1, 0, sampling_steps))]

    def p_sample(self, model_fn, x_t, t, t_prev, noise):
        r"""One step :math:`x_t \to x_{t_{prev}}`; ``t_prev = -1`` means the clean sample (:math:`\bar\alpha = 1`).

        1. Predict :math:`\hat x_0 = f(x_t, t)`.
        2. The implied noise :math:`\hat\epsilon = (x_t - \sqrt{\bar\alpha_t}\hat x_0) / \sqrt{1 - \bar\alpha_t}`.
        3. :math:`\sigma = \eta \sqrt{(1 - \bar\alpha_{prev}) / (1 - \bar\alpha_t)}
           \sqrt{1 - \bar\alpha_t / \bar\alpha_{prev}}` (DDIM Eq. 16).
        4. :math:`x_{prev} = \sqrt{\bar\alpha_{prev}}\hat x_0 + \sqrt{1 - \bar\alpha_{prev} - \sigma^2}\,\hat\epsilon
           + \sigma z` (DDIM Eq. 12).
        """
        alphas_cumprod = self.diffusion.alphas_cumprod
        x_start = model_fn(x_t, t)
        alpha_bar = alphas_cumprod[t].view(-1, *([1] * (x_t.dim() - 1)))  # [B 1]
        if t_prev >= 0:
            alpha_bar_prev = alphas_cumprod[t_prev].expand_as(alpha_bar)
        else:
            alpha_bar_prev = torch.ones_like(alpha_bar)
        eps = (x_t - alpha_bar.sqrt() * x_start) / (1.0 - alpha_bar).sqrt()
        sigma = (
            self.eta * ((1.0 - alpha_bar_prev) / (1.0 - alpha_bar)).sqrt() * (1.0 - alpha_bar / alpha_bar_prev).sqrt()
        )
        direction = (1.0 - alpha_bar_prev - sigma**2).clamp(min=0.0).sqrt() * eps
        return alpha_bar_prev.sqrt() * x_start + direction + sigma * noise

    @torch.no_grad()
    def sample(self, model_fn, shape, device, generator=None, noise=None):
        """Generate ``x_0`` of ``shape`` from pure Gaussian noise in ``len(self.timesteps)`` steps (noise drawn as
        :func:`noise_source` says; with ``eta = 0`` only draw 0, x_T, is used)."""
        draw = noise_source(device, generator, noise)
        x = draw(0, shape)
        steps = self.timesteps
        for i, step in enumerate(steps):
            t = torch.full((shape[0],), step, device=device, dtype=torch.long)
            t_prev = steps[i + 1] if i + 1 < len(steps) else -1
            fresh = draw(i + 1, shape) if self.eta > 0 else torch.zeros(shape, device=device)
            x = self.p_sample(model_fn, x, t, t_prev, fresh)
        return x


def build_sampler(name, diffusion, sampling_steps, eta):
    """The sampler named ``name`` (``ddpm`` or ``ddim``) for ``diffusion``."""
    if name == "ddpm":
        return DDPMSampler(diffusion)
    if name == "ddim":
        return DDIMSampler(diffusion, sampling_steps, eta)
    raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {name!r}")
