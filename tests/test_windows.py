"""Training windows (recbole_dreamrec.data): which rows, which targets, and the encoders at every position."""

import logging

import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import GRU4Rec
from recbole.utils import init_seed

from recbole_dreamrec import Config
from recbole_dreamrec.data import WINDOW_TARGETS_FIELD, WindowTrainDataLoader, train_loader, window_dataset, window_rows
from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.model.denoisers import StepEmbedding
from recbole_dreamrec.model.dreamrec import next_items, window_positions

from helpers import make_dreamrec


@pytest.fixture(scope="module")
def data(tiny_config_dict):
    config = Config(model="DreamRec", dataset="ml-100k-tiny", config_dict={**tiny_config_dict, "window_stride": 7})
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return config, train_data, test_data


make_model = make_dreamrec


def test_window_rows_by_hand():
    # user 5: 3 rows; user 2: 12 rows; user 9: 4 rows, listed out of user order (rows of a user keep their order)
    users = np.array([5, 2, 2, 5, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 5, 9, 9, 9, 9])
    rows, targets = window_rows(users, max_len=5, stride=3)
    # user 2's rows are 1, 2, 4, ..., 13 (k = 0 .. 11): its first window ends at k = 4 (row 6) with all 5 targets,
    # then k = 7 (row 9) and k = 10 (row 12) with 3 each, and k = 11 (row 13) with the last one;
    # user 5 (k = 0 .. 2: rows 0, 3, 14) and user 9 (rows 15 .. 18) are each one window of all their rows
    assert rows.tolist() == [6, 9, 12, 13, 14, 18]
    assert targets.tolist() == [5, 3, 3, 1, 3, 4]
    assert targets.sum() == len(users)


@pytest.mark.parametrize("stride", [1, 2, 5])
def test_window_rows_cover_every_row_once(stride):
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), rng.integers(1, 40, size=30))
    rng.shuffle(users)
    rows, targets = window_rows(users, max_len=5, stride=stride)
    covered = []
    for user in np.unique(users):
        mine = np.flatnonzero(users == user)
        for row, count in zip(rows, targets):
            if users[row] == user:
                k = np.searchsorted(mine, row)  # the row's index within its user
                assert count <= min(5, k + 1)  # within the window
                covered += mine[k - count + 1 : k + 1].tolist()
    assert sorted(covered) == list(range(len(users)))


@pytest.mark.parametrize("stride", [1, 7])
def test_windows_hold_exactly_recboles_training_pairs(data, stride):
    """Every (history, target) the windows train on is a RecBole training row's: the same target after the same
    items (its last ones where the window's history is shorter), each row once; with S = 1 the same histories."""
    config, train_data, _ = data
    rows_dataset, max_len = train_data._dataset, config["MAX_ITEM_LIST_LENGTH"]
    feat = rows_dataset.inter_feat
    seq_field, len_field = rows_dataset.item_id_list_field, rows_dataset.item_list_length_field
    users = feat[rows_dataset.uid_field].numpy()
    chosen, _ = window_rows(users, max_len, stride)
    windows = window_dataset(rows_dataset, stride).inter_feat
    seq, length, target = windows[seq_field], windows[len_field], windows[rows_dataset.iid_field]
    positions, counts = window_positions(length, windows[WINDOW_TARGETS_FIELD])
    following = next_items(seq, length, target).gather(1, positions)
    covered = []
    for b, row in enumerate(chosen):
        mine = np.flatnonzero(users == users[row])  # the user's RecBole rows, in order
        k = np.searchsorted(mine, row)
        for c in np.flatnonzero(counts[b].numpy()):
            p = positions[b, c].item()
            recbole_row = mine[k - (length[b].item() - 1 - p)]  # the row whose target position p predicts
            covered.append(recbole_row)
            history = feat[seq_field][recbole_row, : feat[len_field][recbole_row]].tolist()
            window_history = seq[b, : p + 1].tolist()
            assert following[b, c].item() == feat[rows_dataset.iid_field][recbole_row].item()
            assert history[-len(window_history):] == window_history  # the same last items ...
            assert len(window_history) == len(history) or len(window_history) >= max_len - stride + 1  # ... enough
            if stride == 1:
                assert window_history == history
    assert sorted(covered) == list(range(len(feat)))  # each row once


@pytest.mark.parametrize("encoder_type,n_layers", [("sasrec", 1), ("sasrec", 2), ("paper", 1), ("gru", 2)])
def test_each_window_position_is_its_prefix_encoded_alone(data, encoder_type, n_layers):
    model = make_model(data, encoder_type=encoder_type, n_layers=n_layers, n_heads=2).eval()
    windows = window_dataset(data[1]._dataset, stride=7).inter_feat[torch.arange(40)]
    seq, length = windows[model.ITEM_SEQ], windows[model.ITEM_SEQ_LEN]
    positions, counts = window_positions(length, windows[WINDOW_TARGETS_FIELD])
    with torch.no_grad():
        h = model.encode(seq, positions)  # [B C H]
        for c in range(positions.shape[1]):
            p = positions[:, c]
            prefix = torch.where(torch.arange(seq.shape[1]) <= p.unsqueeze(1), seq, 0)  # the items 0 .. p alone
            torch.testing.assert_close(h[:, c], model.forward(prefix, p + 1), rtol=1e-4, atol=1e-5)
    h_train, targets = model.training_targets(windows)
    assert h_train.shape == (int(windows[WINDOW_TARGETS_FIELD].sum()), model.hidden_size)
    torch.testing.assert_close(h_train, h[counts])


def test_the_window_loss_is_the_mean_over_its_targets(data):
    """The loss of a batch of windows equals the loss of RecBole-style rows made of its (history, target) pairs,
    with the same noise, steps and guidance drops: every target weighs the same."""
    model = make_model(data, uncond_prob=0.3).eval()
    windows = window_dataset(data[1]._dataset, stride=7).inter_feat[torch.arange(20)]
    h, targets = model.training_targets(windows)
    m = len(targets)
    torch.manual_seed(5)
    loss = model.calculate_loss(windows)
    torch.manual_seed(5)
    drop = torch.rand(m, 1) < 0.3
    t = torch.randint(0, model.diffusion.num_timesteps, (m,))
    noise = torch.randn(m, model.code_size)
    h = torch.where(drop, model.null_guidance.expand_as(h), h)
    x_start = model.codes[targets]
    x_t = model.diffusion.sqrt_alphas_cumprod[t, None] * x_start + model.diffusion.sqrt_one_minus_alphas_cumprod[t, None] * noise
    prediction = model.denoiser(x_t, h, t)
    expected = (1 - torch.nn.functional.cosine_similarity(prediction, x_start, dim=-1)).mean()
    torch.testing.assert_close(loss, expected)


def test_batches_hold_about_train_batch_size_targets(data):
    config, train_data, _ = data
    loader = train_loader(config, train_data)
    assert isinstance(loader, WindowTrainDataLoader)
    targets = [int(batch[WINDOW_TARGETS_FIELD].sum()) for batch in loader]
    assert sum(targets) == len(train_data._dataset)  # an epoch covers every training target once
    per_window = len(train_data._dataset) / len(loader._dataset)
    assert loader.step == round(config["train_batch_size"] / per_window)
    assert abs(np.mean(targets[:-1]) - config["train_batch_size"]) < 0.25 * config["train_batch_size"]


def test_window_rows_of_no_rows_and_of_one_row():
    rows, targets = window_rows(np.zeros(0, dtype=np.int64), max_len=5, stride=3)
    assert rows.shape == targets.shape == (0,) and rows.dtype == targets.dtype == np.int64
    rows, targets = window_rows(np.array([4]), max_len=5, stride=3)
    assert rows.tolist() == [0] and targets.tolist() == [1]


def test_the_window_loader_shuffles_as_the_config_says(data):
    """Windows come in the dataset's order unshuffled and in a new order each epoch shuffled (RecBole's default for
    training, ``shuffle: True``); ``train_loader`` passes ``config['shuffle']`` on."""
    config, train_data, _ = data
    dataset = window_dataset(train_data._dataset, 7)
    targets, iid = len(train_data._dataset), dataset.iid_field

    def order(loader):  # the windows' (user, target) pairs in the order the loader gives them: unique per window
        return [tuple(pair) for b in loader for pair in torch.stack([b[dataset.uid_field], b[iid]], 1).tolist()]

    stored = [tuple(pair) for pair in torch.stack([dataset.inter_feat[dataset.uid_field], dataset.inter_feat[iid]], 1).tolist()]
    assert order(WindowTrainDataLoader(config, dataset, targets, shuffle=False)) == stored
    shuffled = WindowTrainDataLoader(config, dataset, targets)  # shuffled unless told otherwise, as RecBole's
    first, second = order(shuffled), order(shuffled)
    assert first != stored and second != first and sorted(first) == sorted(stored)
    before = config["shuffle"]
    try:
        for shuffle in (True, False):
            config["shuffle"] = shuffle
            assert (order(train_loader(config, train_data)) == stored) is (not shuffle)
    finally:
        config["shuffle"] = before


def test_a_batch_smaller_than_a_window_takes_one_window(data):
    config, train_data, _ = data
    before = config["train_batch_size"]
    try:
        config["train_batch_size"] = 1
        loader = train_loader(config, train_data)
        assert loader.step == 1 and all(len(batch) == 1 for batch in loader)
    finally:
        config["train_batch_size"] = before


def test_the_window_loader_says_what_it_trains_on(data, caplog):
    config, train_data, _ = data
    with caplog.at_level(logging.INFO):
        loader = train_loader(config, train_data)
    windows, targets = len(loader._dataset), len(train_data._dataset)
    assert (f"training windows (window_stride 7): {windows} windows of up to {config['MAX_ITEM_LIST_LENGTH']} items "
            f"hold the {targets} training targets; batches of {loader.step} windows (about "
            f"{config['train_batch_size']} targets)") in caplog.text


def test_window_stride_zero_and_other_models_keep_recboles_loader(data, tiny_config_dict):
    config, train_data, _ = data
    config["window_stride"] = 0
    try:
        assert train_loader(config, train_data) is train_data
    finally:
        config["window_stride"] = 7
    sasrec = Config(model="SASRec", dataset="ml-100k-tiny", config_dict=tiny_config_dict)
    assert train_loader(sasrec, train_data) is train_data


def test_bad_window_stride_is_refused(tiny_config_dict):
    with pytest.raises(ConfigError, match="window_stride must be an integer >= 0"):
        Config(model="DreamRec", dataset="ml-100k-tiny", config_dict={**tiny_config_dict, "window_stride": -1})


def test_a_stride_beyond_the_window_is_the_window():
    """S > L: non-overlapping windows, as S = L (a data set with short histories keeps a default made for long)."""
    users = np.repeat(np.arange(4), [3, 12, 25, 7])
    for stride in (6, 50):
        rows, targets = window_rows(users, max_len=5, stride=stride)
        expected_rows, expected_targets = window_rows(users, max_len=5, stride=5)
        assert rows.tolist() == expected_rows.tolist() and targets.tolist() == expected_targets.tolist()


def test_gru_encoder_equals_recboles_gru4rec(data, tiny_config_dict):
    """``encoder_type: gru`` is GRU4Rec's encoder: with GRU4Rec's weights it gives GRU4Rec's sequence output."""
    config = Config(model="GRU4Rec", dataset="ml-100k-tiny",
                    config_dict={**tiny_config_dict, "embedding_size": 64, "hidden_size": 64, "num_layers": 2})
    init_seed(0, True)
    gru4rec = GRU4Rec(config, data[1]._dataset).eval()
    model = make_model(data, encoder_type="gru", n_layers=2).eval()
    model.item_embedding.weight.data.copy_(gru4rec.item_embedding.weight)
    model.gru_encoder.gru.load_state_dict(gru4rec.gru_layers.state_dict())
    model.gru_encoder.dense.load_state_dict(gru4rec.dense.state_dict())
    batch = next(iter(data[2]))[0]
    seq, length = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    with torch.no_grad():
        torch.testing.assert_close(model.forward(seq, length), gru4rec.forward(seq, length), rtol=1e-5, atol=1e-6)


def test_step_embedding_of_repeated_steps_equals_each_row_alone():
    torch.manual_seed(0)
    embedding = StepEmbedding(16)
    t = torch.tensor([5, 0, 5, 19, 0, 7])
    expected = torch.cat([torch.nn.Sequential.forward(embedding, t[i : i + 1]) for i in range(len(t))])
    torch.testing.assert_close(embedding(t), expected)
    # gradients reach the network through every row
    embedding(t).sum().backward()
    assert embedding[1].weight.grad.abs().sum() > 0
