"""DreamRec as a RecBole model, on a tiny slice of ml-100k."""

import inspect
import re

import pytest
import torch
import yaml

from recbole.data import create_dataset, data_preparation

from recbole_dreamrec import Config
import recbole_dreamrec.model.dreamrec as dreamrec_module
from recbole_dreamrec.model.dreamrec import transformer_layer_at
from recbole_dreamrec.model.encoders import PaperEncoder
from recbole_dreamrec.utils import properties_path

from helpers import first_batch, make_dreamrec


@pytest.fixture(scope="module")
def data(tiny_config_dict):
    config = Config(model="DreamRec", dataset="ml-100k-tiny", config_dict=tiny_config_dict)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return config, train_data, test_data


make_model = make_dreamrec


def test_defaults_come_from_the_model_yaml(data):
    config = data[0]
    with open(properties_path("model", "DreamRec.yaml")) as f:
        defaults = yaml.safe_load(f)
    for key in ("timesteps", "beta_schedule", "guidance_weight", "uncond_prob", "denoiser_type", "sampler"):
        assert key in defaults
    assert config["beta_schedule"] == defaults["beta_schedule"]
    assert config["guidance_weight"] == defaults["guidance_weight"]
    assert config["train_neg_sample_args"]["distribution"] == "none"  # no negative sampling


def test_every_yaml_key_is_documented():
    pattern = re.compile(r"^\w+:\s.*#\s\((int|float|str|bool|dict|list)\)\s\S.*\.\s*$")
    with open(properties_path("model", "DreamRec.yaml")) as f:
        lines = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]
    undocumented = [line for line in lines if not pattern.match(line)]
    assert undocumented == []


def test_every_key_the_model_reads_is_defined():
    source = inspect.getsource(dreamrec_module)
    keys = set(re.findall(r'config\["(\w+)"\]', source))
    with open(properties_path("model", "DreamRec.yaml")) as f:
        defined = set(yaml.safe_load(f))
    recbole_keys = {"seed"}  # defined by RecBole's overall.yaml
    assert keys - defined - recbole_keys == set()


def test_item_embeddings_start_on_the_noise_scale(data):
    model = make_model(data, item_embedding_init="normal")
    assert model.item_embedding.weight.std().item() == pytest.approx(1.0, abs=0.05)
    assert model.mean_item_embedding_norm() == pytest.approx(model.hidden_size**0.5, rel=0.1)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_forward_equals_sasrec_encoder_gathered_at_last_position(data, n_layers):
    model = make_model(data, n_layers=n_layers).eval()
    batch = first_batch(data[1])
    item_seq, item_seq_len = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    h = model.forward(item_seq, item_seq_len)
    assert h.shape == (len(item_seq), model.hidden_size)

    position_ids = torch.arange(item_seq.size(1)).unsqueeze(0).expand_as(item_seq)
    emb = model.LayerNorm(model.item_embedding(item_seq) + model.position_embedding(position_ids))
    full = model.trm_encoder(emb, model.get_attention_mask(item_seq), output_all_encoded_layers=True)[-1]
    torch.testing.assert_close(h, model.gather_indexes(full, item_seq_len - 1), rtol=1e-4, atol=1e-5)


def test_transformer_layer_at_any_indexes(data):
    model = make_model(data).eval()
    layer = model.trm_encoder.layer[0]
    hidden = torch.randn(4, 6, model.hidden_size)
    item_seq = torch.tensor([[1] * 6, [1] * 6, [1, 1, 1, 0, 0, 0], [1] * 6])
    mask = model.get_attention_mask(item_seq)
    index = torch.tensor([[0, 5], [2, 2], [1, 2], [3, 4]])  # two positions a row, in any order, repeated
    expected = layer(hidden, mask)[torch.arange(4).unsqueeze(1), index]
    torch.testing.assert_close(transformer_layer_at(layer, hidden, mask, index), expected, rtol=1e-4, atol=1e-5)


def test_loss_is_finite_and_decreases(data):
    model = make_model(data)
    batch = first_batch(data[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5


def test_training_uses_no_negative_items(data):
    config, train_data, _ = data
    batch = first_batch(train_data)
    assert not any(field.startswith(config["NEG_PREFIX"]) for field in batch.interaction)
    model = make_model(data)
    model.calculate_loss(batch).backward()  # needs only the history and the target


def test_detach_target_controls_gradient_into_target_embedding(data):
    batch = first_batch(data[1])
    grads = {}
    for detach in (True, False):
        model = make_model(data, detach_target=detach, uncond_prob=1.0 - 1e-9)  # h dropped: encoder path idle
        model.calculate_loss(batch).backward()
        grads[detach] = model.item_embedding.weight.grad.abs().sum().item()
    assert grads[True] == 0.0 and grads[False] > 0.0


def trained_steps(model, batch, repeats=20):
    """The timesteps ``calculate_loss`` trains the denoiser at over ``repeats`` calls on ``batch``."""
    seen, denoiser = [], model.denoiser.forward

    def recording(x_t, h, t):
        seen.append(t.clone())
        return denoiser(x_t, h, t)

    model.denoiser.forward = recording
    for _ in range(repeats):
        model.calculate_loss(batch)
    return torch.cat(seen)


def test_train_timesteps_sampler_trains_only_at_the_steps_the_sampler_reads(data):
    """'sampler' draws t from the sampler's own steps (DDIM K = 1: T-1 alone, where the one-step oracle is read;
    K = 3: those three, each of them); 'all' (the paper) from all T; a model keeps the steps it was built with."""
    config, batch = data[0], first_batch(data[1])
    T = config["timesteps"]
    one = make_model(data, train_timesteps="sampler", sampler="ddim", sampling_steps=1)
    assert set(trained_steps(one, batch).tolist()) == {T - 1}
    three = make_model(data, train_timesteps="sampler", sampler="ddim", sampling_steps=3)
    assert set(trained_steps(three, batch).tolist()) == set(three.sampler.timesteps)
    assert len(set(three.sampler.timesteps)) == 3 and {T - 1, 0} <= set(three.sampler.timesteps)
    every = make_model(data, train_timesteps="all", sampler="ddim", sampling_steps=1)
    assert set(trained_steps(every, batch).tolist()) == set(range(T))
    ddpm = make_model(data, train_timesteps="sampler", sampler="ddpm")
    assert set(trained_steps(ddpm, batch).tolist()) == set(range(T))
    # a saved config from before the key: None, all T
    assert make_model(data, train_timesteps=None).train_steps is None
    one.sampler = three.sampler  # inference read at other steps later (guidance_sweep.py) leaves training alone
    assert set(trained_steps(one, batch, repeats=3).tolist()) == {T - 1}


def test_refit_last_step_is_the_least_squares_one_step_read_of_the_training_targets(data):
    """After the refit, f(x_T, h, T-1) = A x_T + B h + c with (A, B, c) the ridge least-squares fit of x_0 from
    [x_T, h, 1] over every training target (x_T ~ q(x_T | x_0) from the refit's seed), the null vector is the mean
    h, the encoder is untouched, and the guided one-step oracle reads A x_T + c + B h + w B (h - mean h)."""
    from recbole_dreamrec.model.refit import refit_last_step

    model = make_model(data, diffusion_loss_type="l2", sampling_steps=1)
    batches = list(data[1])  # one fixed order of the training batches for both computations
    encoder = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("denoiser", "null"))}
    model.train()
    assert refit_last_step(model, batches, ridge=2.0, seed=3) == sum(len(b) for b in batches)
    assert model.training  # left in its mode
    model.eval()
    D, H, last = model.code_size, model.hidden_size, model.diffusion.num_timesteps - 1
    generator = torch.Generator().manual_seed(3)
    rows, targets = [], []
    with torch.no_grad():
        for batch in batches:
            h, target = model.training_targets(batch)
            x0 = model.codes[target]
            x_t = model.diffusion.q_sample(x0, torch.full((len(target),), last), torch.randn(x0.shape, generator=generator))
            rows.append(torch.cat([x_t, h, torch.ones(len(target), 1)], dim=1).double())
            targets.append(x0.double())
    design, x0 = torch.cat(rows), torch.cat(targets)  # [M D+H+1], [M D]
    ridge_rows = torch.cat([2.0 ** 0.5 * torch.eye(D + H, dtype=torch.float64), torch.zeros(D + H, 1, dtype=torch.float64)], 1)
    fit = torch.linalg.lstsq(torch.cat([design, ridge_rows]), torch.cat([x0, torch.zeros(D + H, D, dtype=torch.float64)])).solution
    x_t, h = design[:50, :D].float(), design[:50, D:D + H].float()
    with torch.no_grad():
        predicted = model.denoiser(x_t, h, torch.full((50,), last))
    torch.testing.assert_close(predicted.double(), design[:50] @ fit, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(model.null_guidance.detach().double(), design[:, D:D + H].mean(0), atol=1e-5, rtol=1e-5)
    for key, value in encoder.items():
        assert torch.equal(model.state_dict()[key], value), key
    # the guided one-step oracle: A x_T + c + B h + w B (h - mean h)
    model.guidance_weight = 4.0
    with torch.no_grad():
        oracle = model.guided_denoise_fn(h)(x_t, torch.full((50,), last))
    B, h_mean = fit[D:D + H], design[:, D:D + H].mean(0)
    expected = design[:50] @ fit + 4.0 * (h.double() - h_mean) @ B
    torch.testing.assert_close(oracle.double(), expected, atol=2e-3, rtol=2e-3)


def test_refit_features_add_random_relu_features_of_h_to_the_least_squares_read(data):
    """With ``refit_features`` F the refit fits x_0 from [x_T, h, phi(h), 1], phi(h) = relu(h P + o) with P, o drawn
    from the seed (P scaled to h's spread), and the denoiser's last step then predicts that fit; before the refit the
    features are off: a model with them computes the same loss as one without (same seed), and x_T's noise is the
    same for every F."""
    from recbole_dreamrec.model.refit import refit_last_step

    batches = list(data[1])
    plain = make_model(data, diffusion_loss_type="l2", sampling_steps=1)
    model = make_model(data, diffusion_loss_type="l2", sampling_steps=1, refit_last_step=True, refit_features=24)
    for key, value in plain.state_dict().items():  # the same initial weights: the features draw nothing at init
        assert torch.equal(model.state_dict()[key], value), key
    torch.manual_seed(5)
    loss_plain = plain.calculate_loss(batches[0])
    torch.manual_seed(5)
    assert torch.equal(model.calculate_loss(batches[0]), loss_plain)  # off until the refit
    model.load_state_dict(plain.state_dict())  # a checkpoint trained without the read (a run continued): unfitted
    assert not model.denoiser.feature_read.fitted and not model.denoiser.feature_read.weight.any()
    refit_last_step(model, batches, ridge=0.5, seed=7)
    read = model.denoiser.feature_read
    assert bool(read.fitted) and read.weight.abs().sum() > 0
    model.eval()
    D, H, F, last = model.code_size, model.hidden_size, 24, model.diffusion.num_timesteps - 1
    generator = torch.Generator().manual_seed(7)
    rows, targets = [], []
    with torch.no_grad():
        first_h = model.training_targets(batches[0])[0]
        projection = torch.randn(H, F, generator=torch.Generator().manual_seed(7)) / (H ** 0.5 * first_h.std(0).mean())
        torch.testing.assert_close(read.projection, projection)
        for batch in batches:
            h, target = model.training_targets(batch)
            x0 = model.codes[target]
            x_t = model.diffusion.q_sample(x0, torch.full((len(target),), last), torch.randn(x0.shape, generator=generator))
            phi = torch.relu(h @ read.projection + read.offset)
            rows.append(torch.cat([x_t, h, phi, torch.ones(len(target), 1)], dim=1).double())
            targets.append(x0.double())
    design, x0 = torch.cat(rows), torch.cat(targets)  # [M D+H+F+1], [M D]
    n = D + H + F
    ridge_rows = torch.cat([0.5 ** 0.5 * torch.eye(n, dtype=torch.float64), torch.zeros(n, 1, dtype=torch.float64)], 1)
    fit = torch.linalg.lstsq(torch.cat([design, ridge_rows]), torch.cat([x0, torch.zeros(n, D, dtype=torch.float64)])).solution
    with torch.no_grad():
        predicted = model.denoiser(design[:50, :D].float(), design[:50, D:D + H].float(), torch.full((50,), last))
    torch.testing.assert_close(predicted.double(), design[:50] @ fit, atol=1e-3, rtol=1e-3)
    assert (fit[D + H:n].abs().sum() > 1e-3 * fit[D:D + H].abs().sum())  # the features take part in the read


def test_refit_code_size_reads_h_into_a_table_of_its_own_which_then_ranks_the_items(data):
    """With ``refit_code_size`` N the refit builds a fixed [n_items N] table of the training data's SVD codes (the
    same user-item matrix from the training windows as from RecBole's rows), fits B h + C phi(h) + c to each target's
    code in it by ridge least squares (no x_T), leaves the denoiser and the encoder as trained, sets the null vector
    to the mean h, and the model then ranks by the guided read dotted with the table. Before the refit the model is
    the one without it (same init, same loss, same scores)."""
    from recbole_dreamrec.data import train_loader
    from recbole_dreamrec.model.item_init import sequential_interaction_matrix, svd_item_codes

    config, rows = data[0], data[1]
    loader = train_loader(config, rows)  # the training windows, as a run finishes training with
    plain = make_model(data, diffusion_loss_type="l2", sampling_steps=1, guidance_weight=3.0)
    model = make_model(data, diffusion_loss_type="l2", sampling_steps=1, guidance_weight=3.0, refit_last_step=True,
                       refit_features=16, refit_code_size=40)
    assert model.denoiser.feature_read is None and model.table_read.feature_read.weight.shape == (16, 40)
    for key, value in plain.state_dict().items():  # the same initial weights: the table draws nothing at init
        assert torch.equal(model.state_dict()[key], value), key
    batch = next(iter(loader))
    torch.manual_seed(5)
    loss_plain = plain.calculate_loss(batch)
    torch.manual_seed(5)
    assert torch.equal(model.calculate_loss(batch), loss_plain)
    model.load_state_dict(plain.state_dict())  # a checkpoint trained without the table: unfitted, the plain model
    test_batch = first_batch(data[2])[0]
    plain.eval(), model.eval()
    assert not model.reads_table
    torch.testing.assert_close(model.full_sort_predict(test_batch), plain.full_sort_predict(test_batch))
    trained = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("table_read", "null"))}

    assert model.finish_training(loader)
    assert model.reads_table
    expected_table = svd_item_codes(sequential_interaction_matrix(rows._dataset, model), 40,
                                    model.embedding_init_std, torch.Generator().manual_seed(config["seed"]))
    torch.testing.assert_close(model.table_read.codes, expected_table)
    for key, value in trained.items():  # the denoiser and the encoder as trained
        assert torch.equal(model.state_dict()[key], value), key
    read = model.table_read.feature_read
    design, codes = [], []
    with torch.no_grad():
        for b in loader:
            h, target = model.training_targets(b)
            design.append(torch.cat([h, torch.relu(h @ read.projection + read.offset), torch.ones(len(h), 1)], 1).double())
            codes.append(expected_table[target].double())
    design, codes = torch.cat(design), torch.cat(codes)  # [M H+F+1], [M N]
    n = design.shape[1] - 1
    ridge_rows = torch.cat([torch.eye(n, dtype=torch.float64), torch.zeros(n, 1, dtype=torch.float64)], 1)  # ridge 1
    fit = torch.linalg.lstsq(torch.cat([design, ridge_rows]), torch.cat([codes, torch.zeros(n, 40, dtype=torch.float64)])).solution
    H = model.hidden_size
    h_mean = design[:, :H].mean(0)
    torch.testing.assert_close(model.null_guidance.detach().double(), h_mean, atol=1e-5, rtol=1e-5)

    def fitted_read(h):  # [B H] -> [B N], the independent fit
        return torch.cat([h, torch.relu(h @ read.projection + read.offset), torch.ones(len(h), 1)], 1).double() @ fit

    with torch.no_grad():
        h = model.forward(test_batch[model.ITEM_SEQ], test_batch[model.ITEM_SEQ_LEN])
        oracle = 4.0 * fitted_read(h) - 3.0 * fitted_read(h_mean.float()[None])  # (1 + w) read(h) - w read(null)
        scores = model.full_sort_predict(test_batch)
    torch.testing.assert_close(scores.double(), oracle @ expected_table.double().T, atol=2e-3, rtol=2e-3)
    items = torch.randint(1, model.n_items, (len(test_batch), 3))  # predict reads the same table
    pairs = test_batch.repeat_interleave(3)
    pairs.update(type(test_batch)({model.ITEM_ID: items.reshape(-1)}))
    torch.testing.assert_close(model.predict(pairs).view(-1, 3), scores.gather(1, items), rtol=1e-5, atol=1e-5)


# None: a config older than the keys (ridge 1, the last item alone)
@pytest.mark.parametrize("last_item_ridge, lags, decay", [(None, None, None), (40.0, 1, 0.5), (40.0, 3, 0.5)])
def test_refit_last_item_reads_the_history_s_last_item_beside_h_into_the_table(data, last_item_ridge, lags, decay):
    """With ``refit_last_item`` the table read is B h + C phi(h) + T[last item] + c, all fitted in one ridge least
    squares over the training targets (the one-hot block of the last item beside h; B and C shrunk by ridge 1, T's
    rows by ``refit_last_item_ridge``, the bias not); the unconditional read is that of the mean h and the mean
    one-hot vector, and the model ranks by the guided read dotted with the table. The fit here is independent of the
    refit's: every (history, target) pair of the training windows enumerated position by position, the last item and
    the target read off the window, the ridge as rows of sqrt(ridge) appended to the least squares. With
    ``refit_last_item_lags`` K the rows read x = sum_k decay^k onehot(the k-th item before the last; padding before
    the window's start)."""
    from recbole_dreamrec.data import WINDOW_TARGETS_FIELD, train_loader

    config = data[0]
    loader = train_loader(config, data[1])
    model = make_model(data, diffusion_loss_type="l2", sampling_steps=1, guidance_weight=3.0, refit_last_step=True,
                       refit_features=8, refit_code_size=30, refit_last_item=True,
                       refit_last_item_ridge=last_item_ridge, refit_last_item_lags=lags,
                       refit_last_item_decay=decay)
    assert model.refit_last_item and model.table_read.last_item_weight.shape == (model.n_items, 30)
    no_table = make_model(data, refit_last_step=True, sampling_steps=1, refit_last_item=True)
    assert not no_table.refit_last_item  # read only with a table
    model.eval()
    assert model.finish_training(loader)
    read, table = model.table_read.feature_read, model.table_read.codes.double()
    n, H = model.n_items, model.hidden_size

    K = lags or 1

    def design(h, recent):  # [M H+F+n+1]: h, phi(h), x (the last K items' one-hot vectors, weighted), 1
        x = sum(decay ** k * torch.nn.functional.one_hot(recent[:, k], n).double() for k in range(1, K))
        x = torch.nn.functional.one_hot(recent[:, 0], n).double() + x
        return torch.cat([h.double(), torch.relu(h @ read.projection + read.offset).double(), x,
                          torch.ones(len(h), 1, dtype=torch.float64)], 1)

    def before(seq, j):  # [1 K]: the item at j and the K - 1 before it, 0 before the start
        return torch.tensor([[int(seq[j - k]) if j - k >= 0 else 0 for k in range(K)]])

    rows, targets = [], []
    with torch.no_grad():
        for b in loader:
            seq, lengths, k = b[model.ITEM_SEQ], b[model.ITEM_SEQ_LEN], b[WINDOW_TARGETS_FIELD]
            every = model.encode(seq, torch.arange(seq.shape[1]).expand(len(seq), -1))  # [B L H]: h at every position
            for i in range(len(seq)):
                for j in range(int(lengths[i] - k[i]), int(lengths[i])):  # the window's loss positions
                    target = seq[i, j + 1] if j + 1 < lengths[i] else b[model.POS_ITEM_ID][i]
                    rows.append(design(every[i, j][None], before(seq[i], j)))
                    targets.append(int(target))
    X, Y = torch.cat(rows), table[torch.tensor(targets)]  # [M S], [M N]
    assert len(targets) == len(data[1]._dataset)  # every training target once
    S = X.shape[1]
    penalty = torch.ones(S - 1, dtype=torch.float64)  # [h phi onehot]: 1, T's rows the last item's ridge
    penalty[H + 8:] = 1.0 if last_item_ridge is None else last_item_ridge
    ridge_rows = torch.cat([torch.diag(penalty.sqrt()), torch.zeros(S - 1, 1, dtype=torch.float64)], 1)
    Y_rows = torch.cat([Y, torch.zeros(S - 1, 30, dtype=torch.float64)])
    fit = torch.linalg.lstsq(torch.cat([X, ridge_rows]), Y_rows).solution  # [S N], the bias not shrunk
    torch.testing.assert_close(model.table_read.last_item_weight.double(), fit[H + 8:-1], atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(model.null_guidance.detach().double(), X[:, :H].mean(0), atol=1e-5, rtol=1e-5)
    # the unconditional row: the null vector (the mean h) and its features, the mean one-hot vector (and the 1)
    null_row = design(X[:, :H].mean(0, keepdim=True).float(), torch.zeros(1, K, dtype=torch.long))
    null_row[:, H + 8:] = X[:, H + 8:].mean(0)

    test_batch = first_batch(data[2])[0]
    seq, lengths = test_batch[model.ITEM_SEQ], test_batch[model.ITEM_SEQ_LEN]
    with torch.no_grad():
        h = model.forward(seq, lengths)
        recent = torch.cat([before(seq[b], int(lengths[b]) - 1) for b in range(len(seq))])  # [B K]
        oracle = 4.0 * (design(h, recent) @ fit) - 3.0 * (null_row @ fit)
        scores = model.full_sort_predict(test_batch)
    torch.testing.assert_close(scores.double(), oracle @ table.T, atol=2e-3, rtol=2e-3)


def test_refit_last_step_needs_the_linear_denoiser_read_in_one_ddim_step(data):
    from recbole_dreamrec.errors import ConfigError

    make_model(data, refit_last_step=True, sampling_steps=1)  # valid
    for other in ({"sampling_steps": 5}, {"sampler": "ddpm"}, {"denoiser_type": "mlp2"}):
        with pytest.raises(ConfigError, match="refit_last_step refits the one-step oracle of the linear denoiser"):
            make_model(data, refit_last_step=True, **{"sampling_steps": 1, **other})
    assert not make_model(data, refit_last_step=None).finishes_training  # a config older than the key
    assert make_model(data, refit_features=8).denoiser.feature_read is None  # read by the refit only
    assert make_model(data, refit_features=None).denoiser.feature_read is None  # a config older than the key
    assert make_model(data, refit_code_size=8).table_read is None
    full = make_model(data, refit_last_step=True, sampling_steps=1, refit_code_size=10 ** 6)  # the full rank
    assert full.refit_code_size == full.n_items and full.table_read.codes.shape == (full.n_items, full.n_items)


def test_full_sort_predict_shape_and_predict_consistency(data):
    model = make_model(data).eval()
    batch = first_batch(data[2])[0]  # full-sort test batch: users with their histories
    scores = model.full_sort_predict(batch)
    assert scores.shape == (len(batch), model.n_items)

    items = torch.randint(1, model.n_items, (len(batch), 3))
    rows = batch.repeat_interleave(3)  # each history three times, with different items
    rows.update(type(batch)({model.ITEM_ID: items.reshape(-1)}))
    torch.testing.assert_close(model.predict(rows).view(-1, 3), scores.gather(1, items), rtol=1e-5, atol=1e-5)


def test_rows_sharing_a_history_share_the_oracle(data):
    model = make_model(data).eval()
    batch = first_batch(data[2])[0]
    seq, seq_len = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    twice = model.generate(torch.cat([seq, seq]), torch.cat([seq_len, seq_len]))
    torch.testing.assert_close(twice[: len(seq)], twice[len(seq):])
    torch.testing.assert_close(model.generate(seq, seq_len), twice[: len(seq)])  # same seed, same oracle


def test_evaluation_is_deterministic_and_seed_controls_noise(data):
    model = make_model(data).eval()
    batch = first_batch(data[2])[0]
    seq, seq_len = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    torch.manual_seed(1)
    a = model.generate(seq, seq_len)
    torch.manual_seed(2)
    b = model.generate(seq, seq_len)
    assert torch.equal(a, b)  # the global RNG state does not matter
    c = model.generate(seq, seq_len, seed=123)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_rows_oracle_does_not_depend_on_the_rest_of_the_batch(data, sampler):
    model = make_model(data, sampler=sampler, ddim_eta=0.5 if sampler == "ddim" else 0.0).eval()
    batch = first_batch(data[2])[0]
    seq, seq_len = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    whole = model.generate(seq, seq_len)
    # one row at a time, in reverse order, and in batches of 7: every row gets the same oracle
    singles = torch.cat([model.generate(seq[i : i + 1], seq_len[i : i + 1]) for i in range(len(seq))])
    torch.testing.assert_close(singles, whole, rtol=1e-5, atol=1e-5)
    reverse = torch.arange(len(seq) - 1, -1, -1)
    torch.testing.assert_close(model.generate(seq[reverse], seq_len[reverse]), whole[reverse], rtol=1e-5, atol=1e-5)
    sevens = torch.cat([model.generate(seq[i : i + 7], seq_len[i : i + 7]) for i in range(0, len(seq), 7)])
    torch.testing.assert_close(sevens, whole, rtol=1e-5, atol=1e-5)
    # the padding beyond a history's length does not matter either
    padded = seq.clone()
    padded[torch.arange(seq.shape[1]).unsqueeze(0) >= seq_len.unsqueeze(1)] = 1
    torch.testing.assert_close(model.generate(padded, seq_len)[0], whole[0], rtol=1e-5, atol=1e-5)
    # and different histories get different noise, hence different oracles
    assert len({tuple(row.tolist()) for row in whole[:10].round(decimals=4)}) == len(set(map(tuple, seq[:10].tolist())))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_guidance_weight_zero_is_purely_conditional(data, sampler):
    model = make_model(data, guidance_weight=0.0, sampler=sampler).eval()
    h, x, t = torch.randn(4, model.hidden_size), torch.randn(4, model.hidden_size), torch.tensor([0, 3, 7, 19])
    torch.testing.assert_close(model.guided_denoise_fn(h)(x, t), model.denoiser(x, h, t))


def test_guided_denoise_batches_cond_and_uncond(data):
    model = make_model(data, guidance_weight=3.0).eval()
    h, x, t = torch.randn(4, model.hidden_size), torch.randn(4, model.hidden_size), torch.tensor([0, 3, 7, 19])
    cond = model.denoiser(x, h, t)
    uncond = model.denoiser(x, model.null_guidance.expand_as(h), t)
    torch.testing.assert_close(model.guided_denoise_fn(h)(x, t), 4.0 * cond - 3.0 * uncond, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "key,value,allowed",
    [
        ("beta_schedule", "quadratic", "linear"),
        ("denoiser_type", "unet", "mlp1"),
        ("sampler", "euler", "ddpm"),
        ("diffusion_loss_type", "ce", "l2"),
        ("timesteps", 0, "positive integer"),
        ("timesteps", -5, "positive integer"),
        ("sampling_steps", 0, ">= 1"),
        ("guidance_weight", -1.0, ">= 0"),
        ("uncond_prob", 1.0, r"\[0, 1\)"),
        ("uncond_prob", -0.1, r"\[0, 1\)"),
        ("ddim_eta", -0.5, r"\[0, 1\]"),
        ("embedding_init_std", 0.0, "> 0"),
        ("item_embedding_init", "xavier", "normal"),
    ],
)
def test_bad_config_values_raise_at_construction(data, key, value, allowed):
    with pytest.raises(ValueError, match=rf"{key}.*{allowed}"):
        make_model(data, **{key: value})


def test_sampling_steps_above_timesteps_only_matter_to_ddim(data):
    model = make_model(data, sampler="ddpm", sampling_steps=21)
    assert model.sampler.__class__.__name__ == "DDPMSampler"  # K unused: accepted
    with pytest.raises(ValueError, match=r"sampling_steps <= timesteps.*sampling_steps=21, timesteps=20"):
        make_model(data, sampler="ddim", sampling_steps=21)


def test_bad_linear_betas_raise(data):
    with pytest.raises(ValueError, match="beta_start"):
        make_model(data, beta_schedule="linear", beta_start=0.5, beta_end=0.1)


def test_svd_item_init_puts_structured_codes_on_the_noise_scale(data):
    normal = make_model(data, item_embedding_init="normal")
    svd = make_model(data, item_embedding_init="svd")
    weight = svd.item_embedding.weight.detach()
    assert not torch.allclose(weight, normal.item_embedding.weight)
    # 60 users < 64 dims: 60 SVD columns (mean square exactly 1) and 4 N(0, 1) columns
    assert weight[1:].pow(2).mean().sqrt().item() == pytest.approx(svd.embedding_init_std, rel=0.05)
    # the same seed gives the same codes
    assert torch.equal(weight, make_model(data, item_embedding_init="svd").item_embedding.weight.detach())
    # items that share users get similar codes: each item's nearest code is an item it co-occurs with
    config, train_data, _ = data
    feat = train_data._dataset.inter_feat
    users_of = {}
    for user, item in zip(feat[config["USER_ID_FIELD"]].tolist(), feat[config["ITEM_ID_FIELD"]].tolist()):
        users_of.setdefault(item, set()).add(user)
    popular = sorted(users_of, key=lambda i: -len(users_of[i]))[:20]
    codes = torch.nn.functional.normalize(weight, dim=-1)
    sharing = 0
    for item in popular:
        similarity = codes @ codes[item]
        similarity[item] = -2
        neighbour = similarity.argmax().item()
        sharing += bool(users_of[item] & users_of.get(neighbour, set()))
    assert sharing >= 18


def test_separate_codes_are_the_diffusion_data_and_the_ranking_codes(data):
    model = make_model(data, code_size=48, item_embedding_init="normal").eval()
    assert model.codes.shape == (model.n_items, 48) and model.item_embedding.weight.shape[1] == model.hidden_size
    assert model.codes.std().item() == pytest.approx(1.0, abs=0.05)
    batch = first_batch(data[2])[0]
    oracle = model.generate(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    assert oracle.shape == (len(batch), 48)
    torch.testing.assert_close(model.full_sort_predict(batch), oracle @ model.codes.T)
    # the loss regresses the target's code: a denoiser that returns it exactly has zero loss
    train_batch = first_batch(data[1])
    target = model.codes[train_batch[model.POS_ITEM_ID]]
    model.denoiser.forward = lambda x_t, h, t: target
    assert model.calculate_loss(train_batch).item() == pytest.approx(0.0, abs=1e-6)  # l2 or cosine


def test_separate_codes_stay_fixed_while_the_target_is_detached(data):
    batch = first_batch(data[1])
    for detach in (True, False):
        model = make_model(data, code_size=32, detach_target=detach)
        model.calculate_loss(batch).backward()
        grad = model.item_codes.grad
        assert (grad is None) == detach and model.item_codes.requires_grad == (not detach)
        assert model.item_embedding.weight.grad.abs().sum() > 0  # the encoder's own embeddings still train


def test_separate_svd_codes_share_the_singular_directions_with_the_encoder_embeddings(data):
    model = make_model(data, code_size=96)
    # the first hidden_size columns of both tables are the same singular vectors at the same scale
    torch.testing.assert_close(model.codes[:, :8], model.item_embedding.weight[:, :8], rtol=1e-4, atol=1e-5)


def reference_paper_encoder(encoder, input_emb, item_seq, item_seq_len):
    """The paper code's block over the whole sequence (every position a query), gathered at the last one."""
    real = (item_seq != 0).unsqueeze(-1).float()
    seq = input_emb * real
    queries = encoder.query_norm(seq)
    scores = encoder.query(queries) @ encoder.key(seq).transpose(1, 2) / encoder.hidden_size**0.5  # [B L L]
    length = item_seq.shape[1]
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool))
    allowed = causal.unsqueeze(0) & (item_seq != 0).unsqueeze(1)
    scores = torch.where(allowed, scores, torch.full_like(scores, -(2.0**32) + 1))
    attended = torch.softmax(scores, dim=-1) @ encoder.value(seq) + queries
    ff_input = encoder.ff_in_norm(attended)
    ff = encoder.ff_norm(encoder.ff_outer(torch.relu(encoder.ff_inner(ff_input))) + ff_input) * real
    out = encoder.out_norm(ff)
    return out[torch.arange(len(item_seq)), item_seq_len - 1]


def test_paper_encoder_equals_the_whole_sequence_block_at_the_last_position():
    torch.manual_seed(0)
    encoder = PaperEncoder(hidden_size=8, n_heads=1, dropout_prob=0.0).eval()
    item_seq = torch.tensor([[3, 4, 5, 0, 0], [7, 0, 0, 0, 0], [1, 2, 3, 4, 5]])
    item_seq_len = torch.tensor([3, 1, 5])
    input_emb = torch.randn(3, 5, 8)
    h = encoder(input_emb, item_seq, (item_seq_len - 1).unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(h, reference_paper_encoder(encoder, input_emb, item_seq, item_seq_len))
    # padding embeddings do not reach h
    noisy = input_emb.clone()
    noisy[item_seq == 0] += 100.0
    torch.testing.assert_close(encoder(noisy, item_seq, (item_seq_len - 1).unsqueeze(1)).squeeze(1), h)
    # at an earlier position: the block over the first items alone
    earlier = encoder(input_emb, item_seq, torch.tensor([[0, 1], [0, 0], [1, 3]]))
    for row, positions in enumerate([[0, 1], [0, 0], [1, 3]]):
        for column, position in enumerate(positions):
            prefix = torch.where(torch.arange(5) <= position, item_seq[row], 0).unsqueeze(0)
            expected = reference_paper_encoder(encoder, input_emb[row : row + 1], prefix, torch.tensor([position + 1]))
            torch.testing.assert_close(earlier[row, column], expected[0])


def test_paper_encoder_layer_norms_take_its_eps_and_heads_must_divide_h():
    def eps(encoder):
        return [norm.eps for norm in (encoder.query_norm, encoder.ff_in_norm, encoder.ff_norm, encoder.out_norm)]

    assert eps(PaperEncoder(8, 2, 0.0)) == [1e-5] * 4  # the paper code's nn.LayerNorm default
    assert eps(PaperEncoder(8, 2, 0.0, layer_norm_eps=0.25)) == [0.25] * 4
    with pytest.raises(ValueError, match="hidden_size 6 must be divisible by n_heads 4"):
        PaperEncoder(6, 4, 0.0)


def test_paper_encoder_model_trains_and_keeps_torch_default_init(data):
    model = make_model(data, encoder_type="paper", weight_init="torch")
    assert not hasattr(model, "trm_encoder")
    # PyTorch's default Linear init is uniform in +-1/sqrt(fan_in), far wider than N(0, 0.02^2)
    bound = 1 / model.hidden_size**0.5
    weight = model.paper_encoder.query.weight
    assert weight.abs().max().item() <= bound and weight.std().item() > 0.5 * bound / 3**0.5
    batch = first_batch(data[1])
    model.calculate_loss(batch).backward()
    assert model.paper_encoder.key.weight.grad.abs().sum() > 0


def test_generation_samples_average_the_oracles_of_consecutive_seeds(data):
    single = make_model(data).eval()
    averaged = make_model(data, generation_samples=3).eval()
    batch = first_batch(data[2])[0]
    seq, seq_len = batch[single.ITEM_SEQ], batch[single.ITEM_SEQ_LEN]
    expected = torch.stack([single.generate(seq, seq_len, seed=single.sampling_seed + s) for s in range(3)]).mean(0)
    torch.testing.assert_close(averaged.generate(seq, seq_len), expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(expected, single.generate(seq, seq_len))
