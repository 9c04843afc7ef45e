"""Evaluation helpers change what a trainer scores through wrappers, never by patching a model object."""

import logging

import pytest
import torch

from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_dreamrec import Config, DreamRec
from recbole_dreamrec.evaluation import FixedScores, mask_seen_items


@pytest.fixture(scope="module")
def model_and_data(tiny_config_dict):
    config = Config(model="DreamRec", dataset="ml-100k-tiny", config_dict=tiny_config_dict)
    dataset = create_dataset(config)
    train_data, _, test_data = data_preparation(config, dataset)
    init_seed(0, True)
    return DreamRec(config, train_data._dataset).eval(), train_data, test_data


def test_mask_seen_items_wraps_the_model_and_leaves_it_unchanged(model_and_data):
    model, train_data, test_data = model_and_data
    masked = mask_seen_items(model, train_data.dataset)
    assert "full_sort_predict" not in vars(model)  # the model object itself is untouched
    assert masked.predict == model.predict and masked.ITEM_SEQ == model.ITEM_SEQ  # everything else delegates
    assert [id(p) for p in masked.parameters()] == [id(p) for p in model.parameters()]

    batch = next(iter(test_data))[0]
    plain, scores = model.full_sort_predict(batch), masked.full_sort_predict(batch)
    user = batch[train_data.dataset.uid_field][0].item()
    feat = train_data.dataset.inter_feat
    rows = feat[train_data.dataset.uid_field] == user
    seen = set(feat[model.ITEM_ID][rows].tolist())
    for seq, length in zip(feat[model.ITEM_SEQ][rows], feat[model.ITEM_SEQ_LEN][rows]):
        seen |= set(seq[:length].tolist())
    seen |= set(batch[model.ITEM_SEQ][0][: batch[model.ITEM_SEQ_LEN][0]].tolist())
    for item in range(model.n_items):
        if item in seen:
            assert scores[0, item] == float("-inf")
        else:
            assert scores[0, item] == plain[0, item]

    masked.train()
    assert model.training  # mode changes reach the wrapped model
    model.eval()


def test_fixed_scores_scores_every_row_alike(model_and_data):
    model, _, test_data = model_and_data
    fixed = FixedScores(model)
    fixed.scores = torch.arange(model.n_items, dtype=torch.float32)
    batch = next(iter(test_data))[0]
    assert torch.equal(fixed.full_sort_predict(batch), fixed.scores.repeat(len(batch), 1))
    assert "full_sort_predict" not in vars(model)


def test_objective_function_leaves_global_logging_alone(tiny_config_dict, in_tmp_dir, monkeypatch):
    from recbole_dreamrec.quick_start import objective_function

    def forbidden(*args, **kwargs):
        raise AssertionError("logging.basicConfig called by the library")

    monkeypatch.setattr(logging, "basicConfig", forbidden)
    result = objective_function({**tiny_config_dict, "model": "DreamRec", "dataset": "ml-100k-tiny", "epochs": 1},
                                saved=False)
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0
