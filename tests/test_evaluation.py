"""Evaluation helpers change what a trainer scores through wrappers, never by patching a model object."""

import logging

import pytest
import torch

from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_dreamrec import Config, DreamRec
from recbole_dreamrec.analysis.evaluation import FixedScores, mask_seen_items


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
    from recbole_dreamrec.quick_start import objective_function, run_recbole_dreamrec

    def forbidden(*args, **kwargs):
        raise AssertionError("logging.basicConfig called by the library")

    monkeypatch.setattr(logging, "basicConfig", forbidden)
    settings = {**tiny_config_dict, "epochs": 1}
    result = objective_function({**settings, "model": "DreamRec", "dataset": "ml-100k-tiny"}, saved=False)
    # the same train-and-test path as a run: the same seeded numbers
    monkeypatch.undo()  # a run sets up RecBole's logging, as it should
    run = run_recbole_dreamrec("DreamRec", "ml-100k-tiny", config_dict=settings, saved=False)
    assert result["test_result"] == run["test_result"] and result["best_valid_score"] == run["best_valid_score"]


def test_inference_settings_change_a_trained_model_as_its_config_would(tiny_config_dict):
    from recbole_dreamrec.errors import ConfigError
    from recbole_dreamrec.analysis.evaluation import apply_inference_setting

    config = Config(model="DreamRec", dataset="ml-100k-tiny", config_dict=tiny_config_dict)
    train_data, _, test_data = data_preparation(config, create_dataset(config))

    def model_with(**values):
        saved = {key: config[key] for key in values}
        config.final_config_dict.update(values)
        init_seed(0, True)
        try:
            return DreamRec(config, train_data._dataset).eval()  # the same weights every time
        finally:
            config.final_config_dict.update(saved)

    batch = next(iter(test_data))[0]
    seq, length = batch["item_id_list"], batch["item_length"]
    trained = model_with()
    as_trained = trained.generate(seq, length)
    apply_inference_setting(trained, config, {"guidance_weight": 0.0, "generation_samples": 3})
    assert (trained.guidance_weight, trained.generation_samples, trained.sampling_seed) == (0.0, 3, config["seed"])
    assert trained.sampler.__class__.__name__ == "DDIMSampler" and len(trained.sampler.timesteps) == 5  # the config's
    torch.testing.assert_close(trained.generate(seq, length),
                               model_with(guidance_weight=0.0, generation_samples=3).generate(seq, length))
    assert not torch.allclose(trained.generate(seq, length), as_trained)
    apply_inference_setting(trained, config, {})  # nothing given: back to the config's inference
    torch.testing.assert_close(trained.generate(seq, length), as_trained)

    for setting, message in [({"guidance": 1.0}, "unknown inference setting"),
                             ({"guidance_weight": -1}, "guidance_weight must be a number >= 0, got -1"),
                             ({"generation_samples": 0}, "generation_samples must be an integer >= 1, got 0"),
                             ({"sampling_steps": 21}, "needs sampling_steps <= timesteps .*sampling_steps=21")]:
        with pytest.raises(ConfigError, match=message):
            apply_inference_setting(trained, config, setting)
    config.final_config_dict["uncond_prob"] = 0.0  # a checkpoint whose null vector was never trained
    try:
        with pytest.raises(ConfigError, match="guidance_weight > 0 needs uncond_prob > 0"):
            apply_inference_setting(trained, config, {"guidance_weight": 1.0})
        apply_inference_setting(trained, config, {"guidance_weight": 0.0})
    finally:
        config.final_config_dict["uncond_prob"] = 0.1


def test_a_checkpoint_loaded_once_evaluates_each_setting_and_split_as_a_fresh_load_does(tiny_config_dict, in_tmp_dir,
                                                                                       monkeypatch):
    """One load serves several settings and both splits; a setting never leaks into the next evaluation (None after
    a setting is the model as saved)."""
    import recbole_dreamrec.analysis.evaluation as evaluation
    from recbole_dreamrec import run_recbole_dreamrec

    model_file = run_recbole_dreamrec("DreamRec", "ml-100k-tiny", config_dict={**tiny_config_dict, "epochs": 1})["model_file"]
    other = {"guidance_weight": 0.0, "generation_samples": 3, "sampler": "ddpm", "sampling_steps": 20,
             "ddim_eta": 1.0}
    fresh = {split: evaluation.evaluate_checkpoint(model_file, [None], split) +
             evaluation.evaluate_checkpoint(model_file, [other], split) for split in ("valid", "test")}
    assert fresh["test"][0]["ndcg@10"] != fresh["test"][1]["ndcg@10"] or \
        fresh["valid"][0]["ndcg@10"] != fresh["valid"][1]["ndcg@10"]  # the two settings are told apart

    loads = []
    real_load = evaluation.load_data_and_model
    monkeypatch.setattr(evaluation, "load_data_and_model", lambda f: loads.append(f) or real_load(f))
    checkpoint = evaluation.Checkpoint(model_file)
    for split in ("valid", "test", "valid"):
        rows = checkpoint.evaluate([None, other, None], split)
        metrics = [m for m in rows[0] if "@" in m]
        for row, expected in zip(rows, fresh[split] + fresh[split][:1]):
            assert {m: row[m] for m in metrics} == {m: expected[m] for m in metrics}
    assert checkpoint.model.guidance_weight == checkpoint.config["guidance_weight"] and len(loads) == 1
