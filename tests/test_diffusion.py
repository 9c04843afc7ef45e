"""Exact tests of the diffusion math against hand-computed values (no RecBole data needed)."""

import math

import numpy as np
import pytest
import torch

from recbole_dreamrec.model.denoisers import SinusoidalStepEmbedding, build_denoiser
from recbole_dreamrec.model.diffusion import BETA_SCHEDULES, GaussianDiffusion, get_beta_schedule
from recbole_dreamrec.model.dreamrec import drop_guidance
from recbole_dreamrec.model.samplers import DDIMSampler, DDPMSampler, build_sampler, classifier_free_guidance

BETAS = [0.1, 0.2, 0.3]  # alphas 0.9, 0.8, 0.7; alphas_cumprod 0.9, 0.72, 0.504


@pytest.fixture
def diffusion():
    return GaussianDiffusion(BETAS)


def constant_denoiser(value):
    return lambda x_t, t: torch.full_like(x_t, value)


def step_dependent_denoiser(x, t):  # any deterministic x0-predictor that reads both inputs
    return torch.tanh(x) * (t.float()[:, None] + 1) / 10


# schedules ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BETA_SCHEDULES)
def test_schedule_shape_range_and_monotone(name):
    betas = get_beta_schedule(name, 1000)
    assert betas.shape == (1000,) and betas.dtype == np.float64
    assert (betas > 0).all() and (betas < 1).all()
    if name != "sqrt":  # sqrt starts with a large beta by design (Diffusion-LM); the others grow with t
        assert (np.diff(betas) >= 0).all()
    alphas_cumprod = np.cumprod(1 - betas)
    assert (np.diff(alphas_cumprod) < 0).all() and alphas_cumprod[-1] < 0.1  # ends close to pure noise


def test_linear_schedule_values():
    np.testing.assert_allclose(get_beta_schedule("linear", 5, 0.1, 0.5), [0.1, 0.2, 0.3, 0.4, 0.5])


def test_exp_schedule_values():
    # T = 2: x = [1, 5]; beta_i = 1 - exp(-0.1 / 2 - x_i * 0.5 * 9.9 / 4)
    expected = [1 - math.exp(-0.05 - 1 * 0.5 * 9.9 / 4), 1 - math.exp(-0.05 - 5 * 0.5 * 9.9 / 4)]
    np.testing.assert_allclose(get_beta_schedule("exp", 2), expected, rtol=1e-12)


def test_cosine_schedule_values():
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    expected = [1 - f(0.25) / f(0.0), 1 - f(0.5) / f(0.25)]
    np.testing.assert_allclose(get_beta_schedule("cosine", 4)[:2], expected, rtol=1e-12)
    assert get_beta_schedule("cosine", 4)[-1] == pytest.approx(0.9999)  # clipped
    # at T = 1000 the first 13 betas fall below 1e-4 (the first is 4.13e-5) and are clipped up to it
    betas = get_beta_schedule("cosine", 1000)
    assert betas[:13].tolist() == [0.0001] * 13 and betas[13] > 0.0001


def test_sqrt_schedule_values():
    a = lambda t: 1 - math.sqrt(t + 0.0001)  # noqa: E731
    np.testing.assert_allclose(get_beta_schedule("sqrt", 4)[:2], [1 - a(0.25) / a(0), 1 - a(0.5) / a(0.25)])


def test_unknown_schedule_raises():
    with pytest.raises(ValueError, match="beta_schedule must be one of"):
        get_beta_schedule("quadratic", 10)


@pytest.mark.parametrize("betas,message", [([], "betas must be a non-empty 1-D array"),
                                           ([[0.1, 0.2]], "betas must be a non-empty 1-D array"),
                                           ([0.0, 0.1], r"betas must lie in \(0, 1\]"),
                                           ([0.5, 1.5], r"betas must lie in \(0, 1\]")])
def test_invalid_betas_raise(betas, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        GaussianDiffusion(betas)


def test_a_beta_of_one_is_allowed():
    assert GaussianDiffusion([0.5, 1.0]).num_timesteps == 2


# forward process and posterior -------------------------------------------------------------------------------------


def test_buffers_are_float32_derived_and_not_saved(diffusion):
    assert diffusion.betas.dtype == torch.float32
    np.testing.assert_allclose(diffusion.alphas_cumprod.numpy(), [0.9, 0.72, 0.504], rtol=1e-6)
    np.testing.assert_allclose(diffusion.alphas_cumprod_prev.numpy(), [1.0, 0.9, 0.72], rtol=1e-6)
    assert diffusion.state_dict() == {}
    assert diffusion.to(torch.float64).alphas_cumprod.dtype == torch.float64  # buffers follow the module


def test_q_sample_closed_form(diffusion):
    x_start = torch.tensor([[1.0, -2.0]])
    noise = torch.tensor([[0.5, 0.25]])
    x_t = diffusion.q_sample(x_start, torch.tensor([1]), noise)
    expected = math.sqrt(0.72) * x_start + math.sqrt(0.28) * noise
    torch.testing.assert_close(x_t, expected)


def test_q_sample_statistics(diffusion):
    torch.manual_seed(0)
    x_t = diffusion.q_sample(torch.full((200000, 1), 2.0), torch.full((200000,), 2))
    assert x_t.mean().item() == pytest.approx(2 * math.sqrt(0.504), abs=0.01)
    assert x_t.var().item() == pytest.approx(0.496, abs=0.01)


def test_posterior_coefficients(diffusion):
    # t index 1: beta = 0.2, alpha_bar = 0.72, alpha_bar_prev = 0.9
    coef1 = 0.2 * math.sqrt(0.9) / 0.28
    coef2 = 0.1 * math.sqrt(0.8) / 0.28
    variance = 0.2 * 0.1 / 0.28
    assert diffusion.posterior_mean_coef1[1].item() == pytest.approx(coef1, rel=1e-6)
    assert diffusion.posterior_mean_coef2[1].item() == pytest.approx(coef2, rel=1e-6)
    assert diffusion.posterior_variance[1].item() == pytest.approx(variance, rel=1e-6)
    # at t index 0 the posterior is the clean sample itself
    assert diffusion.posterior_mean_coef1[0].item() == pytest.approx(1.0)
    assert diffusion.posterior_mean_coef2[0].item() == pytest.approx(0.0)
    x_start, x_t = torch.tensor([[1.0]]), torch.tensor([[3.0]])
    mean, var = diffusion.q_posterior_mean_variance(x_start, x_t, torch.tensor([1]))
    assert mean.item() == pytest.approx(coef1 * 1.0 + coef2 * 3.0, rel=1e-6)
    assert var.item() == pytest.approx(variance, rel=1e-6)


def test_training_loss_values(diffusion):
    x_start = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    t = torch.tensor([0, 2])
    assert diffusion.training_loss(lambda x_t, t: x_start, x_start, t).item() == 0.0
    off = lambda x_t, t: x_start + torch.tensor([[2.0, 0.0], [0.0, 0.5]])  # noqa: E731
    assert diffusion.training_loss(off, x_start, t, loss_type="l2").item() == pytest.approx((4 + 0.25) / 4)
    assert diffusion.training_loss(off, x_start, t, loss_type="l1").item() == pytest.approx((2 + 0.5) / 4)
    assert diffusion.training_loss(off, x_start, t, loss_type="huber").item() == pytest.approx((1.5 + 0.125) / 4)
    # cosine: row 1 predicts (3, -1) for (1, -1), row 2 (0, 2.5) for (0, 2) (same direction, no loss)
    cos_row1 = (3 * 1 + 1 * 1) / (10**0.5 * 2**0.5)
    assert diffusion.training_loss(off, x_start, t, loss_type="cosine").item() == pytest.approx((1 - cos_row1) / 2)
    with pytest.raises(ValueError, match="diffusion_loss_type"):
        diffusion.training_loss(off, x_start, t, loss_type="cross_entropy")


def test_training_loss_feeds_q_sample_to_the_denoiser(diffusion):
    x_start, noise, t = torch.tensor([[1.0]]), torch.tensor([[0.5]]), torch.tensor([2])
    seen = {}

    def denoiser(x_t, step):
        seen["x_t"], seen["t"] = x_t, step
        return x_t

    diffusion.training_loss(denoiser, x_start, t, noise)
    assert seen["x_t"].item() == pytest.approx(math.sqrt(0.504) + math.sqrt(0.496) * 0.5)
    assert seen["t"].tolist() == [2]


# samplers ----------------------------------------------------------------------------------------------------------


def test_ddpm_step_hand_computed(diffusion):
    x_t, z = torch.tensor([[3.0]]), torch.tensor([[0.5]])
    x_prev = DDPMSampler(diffusion).p_sample(constant_denoiser(1.0), x_t, torch.tensor([1]), z)
    expected = 0.2 * math.sqrt(0.9) / 0.28 * 1.0 + 0.1 * math.sqrt(0.8) / 0.28 * 3.0 + math.sqrt(0.02 / 0.28) * 0.5
    assert x_prev.item() == pytest.approx(expected, rel=1e-6)


def test_ddpm_last_step_returns_prediction_without_noise(diffusion):
    x_prev = DDPMSampler(diffusion).p_sample(
        constant_denoiser(1.5), torch.tensor([[3.0]]), torch.tensor([0]), torch.tensor([[10.0]])
    )
    assert x_prev.item() == pytest.approx(1.5, rel=1e-6)


def test_ddpm_sample_visits_every_step_noisiest_first(diffusion):
    visited = []

    def denoiser(x_t, t):
        visited.append(t.tolist())
        return torch.zeros_like(x_t)

    out = DDPMSampler(diffusion).sample(denoiser, (2, 4), "cpu")
    assert visited == [[2, 2], [1, 1], [0, 0]]
    assert torch.equal(out, torch.zeros(2, 4))  # last step is the prediction


def test_ddim_step_hand_computed(diffusion):
    x_t, z = torch.tensor([[3.0]]), torch.tensor([[0.5]])
    sampler = DDIMSampler(diffusion, sampling_steps=3, eta=0.0)
    x_prev = sampler.p_sample(constant_denoiser(1.0), x_t, torch.tensor([2]), 1, z)
    eps = (3.0 - math.sqrt(0.504) * 1.0) / math.sqrt(0.496)
    assert x_prev.item() == pytest.approx(math.sqrt(0.72) * 1.0 + math.sqrt(0.28) * eps, rel=1e-6)

    # eta = 0.5: sigma = 0.5 sqrt((1 - 0.72) / (1 - 0.504)) sqrt(1 - 0.504 / 0.72)
    sampler = DDIMSampler(diffusion, sampling_steps=3, eta=0.5)
    x_prev = sampler.p_sample(constant_denoiser(1.0), x_t, torch.tensor([2]), 1, z)
    sigma = 0.5 * math.sqrt(0.28 / 0.496) * math.sqrt(1 - 0.504 / 0.72)
    expected = math.sqrt(0.72) + math.sqrt(0.28 - sigma**2) * eps + sigma * 0.5
    assert x_prev.item() == pytest.approx(expected, rel=1e-6)


def test_ddim_last_step_returns_prediction(diffusion):
    sampler = DDIMSampler(diffusion, sampling_steps=3, eta=1.0)
    x_prev = sampler.p_sample(constant_denoiser(-0.7), torch.tensor([[3.0]]), torch.tensor([0]), -1, torch.ones(1, 1))
    assert x_prev.item() == pytest.approx(-0.7, rel=1e-6)


def test_ddim_with_all_steps_and_eta_one_is_ddpm():
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 10, 0.01, 0.3))
    ddpm, ddim = DDPMSampler(diffusion), DDIMSampler(diffusion, sampling_steps=10, eta=1.0)
    assert ddim.timesteps == ddpm.timesteps
    torch.manual_seed(0)
    x_t, z = torch.randn(64, 8), torch.randn(64, 8)

    for i, step in enumerate(ddim.timesteps):
        t = torch.full((64,), step)
        t_prev = ddim.timesteps[i + 1] if i + 1 < 10 else -1
        denoiser = step_dependent_denoiser
        torch.testing.assert_close(
            ddim.p_sample(denoiser, x_t, t, t_prev, z), ddpm.p_sample(denoiser, x_t, t, z), rtol=1e-5, atol=1e-5
        )


def test_ddim_by_default_is_deterministic_given_its_start():
    """eta = 0 unless given: the sample depends on the first draw (x_T) alone, not on the draws of later steps."""
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 10, 0.01, 0.3))
    start = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))

    def noise(seed):
        generator = torch.Generator().manual_seed(seed)
        return lambda i, shape, device: start if i == 0 else torch.randn(shape, generator=generator)

    sampler = DDIMSampler(diffusion, sampling_steps=4)
    a = sampler.sample(step_dependent_denoiser, (16, 4), torch.device("cpu"), noise=noise(1))
    b = sampler.sample(step_dependent_denoiser, (16, 4), torch.device("cpu"), noise=noise(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("steps,expected", [(1, [9]), (2, [9, 0]), (4, [9, 6, 3, 0]), (10, list(range(9, -1, -1)))])
def test_ddim_timesteps(steps, expected):
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 10))
    assert DDIMSampler(diffusion, steps).timesteps == expected


def test_sampler_options_raise(diffusion):
    with pytest.raises(ValueError, match="sampling_steps"):
        DDIMSampler(diffusion, 0)
    with pytest.raises(ValueError, match="sampling_steps"):
        DDIMSampler(diffusion, 4)
    with pytest.raises(ValueError, match="ddim_eta"):
        DDIMSampler(diffusion, 2, eta=-0.1)
    with pytest.raises(ValueError, match=r"sampler must be one of \['ddpm', 'ddim'\]"):
        build_sampler("euler", diffusion, 2, 0.0)


def test_sampling_is_reproducible_with_a_generator(diffusion):
    sampler = DDIMSampler(diffusion, 2, eta=1.0)
    denoiser = lambda x, t: 0.5 * x  # noqa: E731
    a = sampler.sample(denoiser, (3, 4), "cpu", torch.Generator().manual_seed(1))
    b = sampler.sample(denoiser, (3, 4), "cpu", torch.Generator().manual_seed(1))
    c = sampler.sample(denoiser, (3, 4), "cpu", torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


# guidance and denoisers --------------------------------------------------------------------------------------------


def test_classifier_free_guidance_formula():
    cond, uncond = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 2.0), torch.tensor([2.0, 8.0]))
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 0.0), cond)


def test_drop_guidance_extremes():
    h, null = torch.randn(50, 4), torch.randn(4)
    assert torch.equal(drop_guidance(h, null, 0.0), h)
    assert torch.equal(drop_guidance(h, null, 1.0), null.expand(50, 4))  # p = 1: h is ignored
    torch.manual_seed(0)
    dropped = (drop_guidance(torch.ones(20000, 4), torch.zeros(4), 0.3) == 0).all(dim=1).float().mean()
    assert dropped.item() == pytest.approx(0.3, abs=0.02)


def test_sinusoidal_step_embedding():
    emb = SinusoidalStepEmbedding(8)(torch.tensor([0, 3]))
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    frequencies = [10000 ** (-k / 3) for k in range(4)]
    torch.testing.assert_close(emb[1, :4], torch.tensor([math.sin(3 * f) for f in frequencies]))
    # late steps, where a wrong frequency shows: sin and cos of t * 10000^(-k / (half - 1))
    embedding = SinusoidalStepEmbedding(16)
    t = 199
    frequencies = [10000 ** (-k / 7) for k in range(8)]
    expected = [math.sin(t * f) for f in frequencies] + [math.cos(t * f) for f in frequencies]
    torch.testing.assert_close(embedding(torch.tensor([t]))[0], torch.tensor(expected), rtol=0, atol=2e-5)
    assert "frequencies" not in embedding.state_dict()  # derived, not a weight: checkpoints do not carry it


@pytest.mark.parametrize("dim", [2, 7, 3])
def test_sinusoidal_step_embedding_needs_an_even_size_of_at_least_four(dim):
    with pytest.raises(ValueError, match=f"^step embedding size must be even and >= 4, got {dim}$"):
        SinusoidalStepEmbedding(dim)


@pytest.mark.parametrize("name", ["mlp1", "mlp2"])
def test_denoisers_shape(name):
    denoiser = build_denoiser(name, 16)
    assert denoiser(torch.randn(5, 16), torch.randn(5, 16), torch.arange(5)).shape == (5, 16)


def test_mlp1_is_one_linear_layer_on_the_concatenation():
    denoiser = build_denoiser("mlp1", 8)
    x, h, t = torch.randn(3, 8), torch.randn(3, 8), torch.tensor([0, 1, 2])
    expected = denoiser.net(torch.cat([x, h, denoiser.step_embedding(t)], dim=-1))
    torch.testing.assert_close(denoiser(x, h, t), expected)
    assert isinstance(denoiser.net, torch.nn.Linear)


def test_mlp2_values_by_hand():
    """mlp2, computed in float64 from the module's own weights: the step embedding (sinusoids of t, then
    Linear(H, 2H) - GELU - Linear(2H, H)), the concatenation [x_t, h, t_emb], then Linear(3H, 2H) - GELU -
    Linear(2H, H). GELU is the exact one, x * (1 + erf(x / sqrt 2)) / 2."""
    size = 4
    torch.manual_seed(3)
    denoiser = build_denoiser("mlp2", size)
    with torch.no_grad():  # biases are zero at construction in DreamRec; give them values so they count
        for module in denoiser.modules():
            if isinstance(module, torch.nn.Linear):
                module.bias.uniform_(-0.5, 0.5)
    weights = {name: p.detach().double().numpy() for name, p in denoiser.named_parameters()}
    assert sorted(weights) == [
        "net.0.bias", "net.0.weight", "net.2.bias", "net.2.weight",
        "step_embedding.1.bias", "step_embedding.1.weight", "step_embedding.3.bias", "step_embedding.3.weight",
    ]
    gelu = np.vectorize(lambda v: v * (1 + math.erf(v / math.sqrt(2))) / 2)

    def linear(name, v):
        return v @ weights[f"{name}.weight"].T + weights[f"{name}.bias"]

    x, h, t = torch.randn(3, size), torch.randn(3, size), torch.tensor([0, 7, 19])
    frequencies = np.array([10000 ** (-k / (size // 2 - 1)) for k in range(size // 2)])
    angles = t.double().numpy()[:, None] * frequencies[None, :]
    sinusoids = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    t_emb = linear("step_embedding.3", gelu(linear("step_embedding.1", sinusoids)))
    inputs = np.concatenate([x.double().numpy(), h.double().numpy(), t_emb], axis=1)
    expected = linear("net.2", gelu(linear("net.0", inputs)))
    assert expected.shape == (3, size)
    np.testing.assert_allclose(denoiser(x, h, t).detach().double().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_unknown_denoiser_raises():
    with pytest.raises(ValueError, match=r"denoiser_type must be one of \['mlp1', 'mlp2'\]"):
        build_denoiser("unet", 8)
