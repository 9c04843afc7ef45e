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
from recbole_dreamrec.model.dreamrec import DreamRec
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


def test_the_encoder_is_built_from_its_settings(data):
    """Every SASRec-encoder setting reaches the layers (RecBole's TransformerEncoder has defaults of its own: a setting
    not passed on would silently be 2 layers, 2 heads, dropout 0.5, ...)."""
    model = make_dreamrec(data, hidden_size=32, n_layers=3, n_heads=4, inner_size=96, hidden_dropout_prob=0.3,
                          attn_dropout_prob=0.2, hidden_act="relu", layer_norm_eps=1e-7)
    assert len(model.trm_encoder.layer) == 3 and model.position_embedding.weight.shape[1] == 32
    assert model.LayerNorm.eps == 1e-7 and model.dropout.p == 0.3
    for layer in model.trm_encoder.layer:
        attention, feed_forward = layer.multi_head_attention, layer.feed_forward
        assert attention.num_attention_heads == 4 and attention.attention_head_size == 8  # 32 / 4
        assert (attention.attn_dropout.p, attention.out_dropout.p, feed_forward.dropout.p) == (0.2, 0.3, 0.3)
        assert attention.LayerNorm.eps == feed_forward.LayerNorm.eps == 1e-7
        assert feed_forward.dense_1.out_features == 96
        assert feed_forward.intermediate_act_fn(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]  # relu, not gelu


def test_a_linear_schedule_takes_its_ends_from_the_settings(data):
    model = make_dreamrec(data, beta_schedule="linear", timesteps=5, beta_start=0.001, beta_end=0.05)
    expected = [0.001 + k * (0.05 - 0.001) / 4 for k in range(5)]
    torch.testing.assert_close(model.diffusion.betas, torch.tensor(expected), rtol=1e-6, atol=0)


def test_initial_embeddings_and_null_vector_are_centred_with_the_set_scale(data):
    """Position embeddings, the null guidance vector and (with code_size) the separate codes start N(0, s^2), s =
    embedding_init_std; the item embeddings too with item_embedding_init: normal. Bounds: 5 standard errors."""
    s = 0.5
    model = make_dreamrec(data, embedding_init_std=s, item_embedding_init="normal", code_size=32)
    for name, values in [("positions", model.position_embedding.weight), ("null", model.null_guidance),
                         ("items", model.item_embedding.weight[1:]), ("codes", model.item_codes[1:])]:
        values = values.detach().flatten()
        assert abs(values.mean().item()) < 5 * s / math.sqrt(len(values)), name
        assert values.std().item() == pytest.approx(s, rel=5 / math.sqrt(2 * len(values))), name


def test_svd_codes_are_fixed_by_the_seed_setting_alone(data):
    """ARPACK's start vector comes from a generator seeded with ``seed``: whatever drew from the global random stream
    before the model was built, the codes (whose signs ARPACK leaves free) are the same."""
    config, dataset = data[0], data[1]._dataset
    torch.manual_seed(1)
    first = DreamRec(config, dataset).item_embedding.weight.detach().clone()
    torch.manual_seed(2)
    second = DreamRec(config, dataset).item_embedding.weight.detach()
    assert torch.equal(first, second)


@pytest.mark.parametrize("code_size", [1, 32])
def test_code_size_gives_a_code_table_of_its_own(data, code_size):
    model = make_dreamrec(data, code_size=code_size)
    assert model.codes.shape == (model.n_items, code_size) and model.item_embedding.weight.shape[1] == model.hidden_size


def test_sasrec_style_init_of_the_encoder_and_denoiser(data):
    model = make_dreamrec(data, initializer_range=0.02)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in linears if m.bias is not None)
    weights = torch.cat([m.weight.detach().flatten() for m in linears])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05) and abs(weights.mean().item()) < 1e-3


def test_gru_weights_start_xavier_uniform_as_in_gru4rec(data):
    model = make_dreamrec(data, encoder_type="gru")
    gru = next(m for m in model.modules() if isinstance(m, torch.nn.GRU))
    for name, weight in gru.named_parameters():
        if name.startswith("weight"):
            bound = math.sqrt(6.0 / (weight.shape[0] + weight.shape[1]))  # xavier_uniform_, gain 1
            assert weight.abs().max().item() <= bound and weight.abs().max().item() > 0.9 * bound, name


def test_the_padding_row_is_the_embeddings_padding_and_gets_no_gradient(data):
    model = make_dreamrec(data, item_embedding_init="normal")
    assert model.item_embedding.padding_idx == 0
    batch = first_batch(data[1])
    model.calculate_loss(batch).backward()
    grad = model.item_embedding.weight.grad
    assert grad[0].abs().sum().item() == 0
    seen = torch.unique(batch[model.ITEM_SEQ])
    # an item read only after a window's last target position reaches no loss (the encoder is causal): a few rows
    assert (grad[seen[seen > 0]].abs().sum(dim=1) > 0).float().mean().item() > 0.9
