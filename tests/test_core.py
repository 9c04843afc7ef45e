"""The model's core pinned by independent computations: each test recomputes a value the model produces (the
training loss, the generated oracle, the scores) from the parts it is made of, so that a one-line bug in the core
(steps stuck at one value, guidance dropped at inference, a wrong drop rate, an input the denoiser ignores) changes
a value these tests compare."""

import math

import pytest
import torch
from recbole.data import create_dataset, data_preparation

from recbole_dreamrec import Config
from recbole_dreamrec.model.denoisers import build_denoiser
from recbole_dreamrec.model.noise import KeyedNoise, history_keys
from recbole_dreamrec.model.samplers import DDIMSampler, DDPMSampler

from helpers import first_batch, make_dreamrec


@pytest.fixture(scope="module")
def data(tiny_config_dict):
    config = Config(model="DreamRec", dataset="ml-100k-tiny", config_dict=tiny_config_dict)
    return (config, *data_preparation(config, create_dataset(config)))


def test_training_steps_are_uniform_over_every_step(data):
    """``calculate_loss`` hands the denoiser steps drawn uniformly from 0 .. T - 1, each row its own."""
    model = make_dreamrec(data, timesteps=20)
    seen = []
    real = model.denoiser.forward
    model.denoiser.forward = lambda x_t, h, t: seen.append(t) or real(x_t, h, t)
    batch = first_batch(data[1]).repeat(20)  # thousands of rows, one call
    torch.manual_seed(0)
    model.calculate_loss(batch)
    (steps,) = seen
    counts = torch.bincount(steps, minlength=20)
    assert len(counts) == 20 and steps.min() == 0 and steps.max() == 19
    expected = len(steps) / 20  # each count is binomial(n, 1/20): within 5 standard deviations
    assert (counts.float() - expected).abs().max() < 5 * math.sqrt(expected * (1 - 1 / 20))


@pytest.mark.parametrize("loss_type", ["l2", "cosine"])
def test_training_loss_equals_its_value_by_hand(data, loss_type):
    """The loss of a batch of RecBole rows: h dropped to the null vector with probability p, the target's code
    noised to x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps at a uniform step, and the denoiser's x0 prediction
    compared with x0, averaged over the rows (random draws in that order)."""
    model = make_dreamrec(data, uncond_prob=0.4, diffusion_loss_type=loss_type, timesteps=20).eval()
    batch = first_batch(data[1])
    h = model.forward(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    x0 = model.item_embedding.weight[batch[model.POS_ITEM_ID]]
    torch.manual_seed(11)
    loss = model.calculate_loss(batch)

    torch.manual_seed(11)
    drop = torch.rand(len(h), 1) < 0.4
    t = torch.randint(0, 20, (len(h),))
    eps = torch.randn_like(x0)
    alphas_cumprod = torch.cumprod(1 - torch.tensor(model.diffusion.betas.tolist(), dtype=torch.float64), 0).float()
    x_t = alphas_cumprod[t, None].sqrt() * x0 + (1 - alphas_cumprod[t, None]).sqrt() * eps
    guidance = torch.where(drop, model.null_guidance.expand_as(h), h)
    prediction = model.denoiser(x_t, guidance, t)
    if loss_type == "l2":
        expected = ((prediction - x0) ** 2).mean()
    else:
        expected = (1 - (prediction * x0).sum(-1) / (prediction.norm(dim=-1) * x0.norm(dim=-1))).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert 0.2 < drop.float().mean() < 0.6  # the batch did drop some guidance, and kept some


def test_guidance_is_dropped_at_rate_p_to_the_null_vector_alone(data):
    model = make_dreamrec(data, uncond_prob=0.25).eval()
    batch = first_batch(data[1]).repeat(40)  # thousands of rows, one call
    h = model.forward(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    seen = []
    model.denoiser.forward = lambda x_t, guidance, t: seen.append(guidance) or x_t
    torch.manual_seed(0)
    model.calculate_loss(batch)
    (guidance,) = seen  # [B H]
    is_null = (guidance == model.null_guidance).all(-1)
    is_h = (guidance == h).all(-1)
    assert bool((is_null ^ is_h).all())  # every row is either its own h or the null vector
    n = is_null.numel()
    assert is_null.float().mean().item() == pytest.approx(0.25, abs=5 * math.sqrt(0.25 * 0.75 / n))


@pytest.mark.parametrize("sampler,settings", [("ddim", {"sampling_steps": 5}), ("ddim", {"sampling_steps": 7,
                                              "ddim_eta": 0.5}), ("ddpm", {})])
@pytest.mark.parametrize("w", [1.0, 3.0])
def test_generate_is_guided_sampling_from_the_rows_own_noise(data, sampler, settings, w):
    """``generate`` equals the sampler run on a guided denoiser built here, (1 + w) f(x, h, t) - w f(x, null, t), from
    the noise keyed to each history; and guidance moves the oracle (w = 0 gives another one)."""
    model = make_dreamrec(data, guidance_weight=w, sampler=sampler, timesteps=20, **settings).eval()
    batch = first_batch(data[3])[0]
    seq, length = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    oracle = model.generate(seq, length)

    h = model.forward(seq, length)
    null = model.null_guidance.expand_as(h)
    guided = lambda x, t: (1 + w) * model.denoiser(x, h, t) - w * model.denoiser(x, null, t)  # noqa: E731
    if sampler == "ddpm":
        by_hand = DDPMSampler(model.diffusion)
    else:
        by_hand = DDIMSampler(model.diffusion, settings["sampling_steps"], settings.get("ddim_eta", 0.0))
    noise = KeyedNoise(history_keys(seq, length, model.sampling_seed))
    expected = by_hand.sample(guided, (len(seq), model.code_size), seq.device, noise=noise)
    torch.testing.assert_close(oracle, expected, rtol=1e-4, atol=1e-5)
    unguided = by_hand.sample(lambda x, t: model.denoiser(x, h, t), (len(seq), model.code_size), seq.device,
                              noise=noise)
    assert (oracle - unguided).norm(dim=-1).min() > 1e-3 * oracle.norm(dim=-1).mean()


def test_scores_are_the_oracles_dot_product_with_every_items_code(data):
    model = make_dreamrec(data).eval()
    batch = first_batch(data[3])[0]
    oracle = model.generate(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    scores = model.full_sort_predict(batch)
    torch.testing.assert_close(scores, oracle @ model.item_embedding.weight.T, rtol=1e-5, atol=1e-5)
    assert scores.std(dim=1).min() > 0  # the rows rank items, not a constant


def test_the_logged_code_norm_is_the_mean_norm_of_the_real_items_codes(data):
    model = make_dreamrec(data)
    codes = model.codes.detach()
    by_hand = sum(math.sqrt(sum(v * v for v in codes[i].tolist())) for i in range(1, len(codes))) / (len(codes) - 1)
    assert model.mean_item_embedding_norm() == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("name", ["mlp1", "mlp2"])
def test_the_denoiser_reads_each_of_its_inputs(name):
    torch.manual_seed(0)
    denoiser = build_denoiser(name, 8, 12)
    x, h, t = torch.randn(4, 12), torch.randn(4, 8), torch.tensor([0, 5, 9, 19])
    out = denoiser(x, h, t)
    for changed in (denoiser(x + 1, h, t), denoiser(x, h + 1, t), denoiser(x, h, t + 1)):
        assert (changed - out).abs().min(dim=-1).values.min() > 0  # every row moves
