"""DreamRec's settings table: every key of properties/model/DreamRec.yaml with a valid and an invalid value, checked
when the Config is built (before any data loads); an invalid value names its key."""

import re

import pytest
import yaml

from recbole_dreamrec import Config, DreamRec
from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.utils import properties_path

# key -> (a valid value, other settings it needs)
VALID = {
    "encoder_type": ("paper", {}),
    "weight_init": ("torch", {}),
    "code_size": (128, {}),
    "svd_group_field": ("user_id", {}),
    "generation_samples": (4, {}),
    "n_layers": (2, {}),
    "n_heads": (2, {}),
    "hidden_size": (32, {}),
    "inner_size": (128, {}),
    "hidden_dropout_prob": (0.0, {}),
    "attn_dropout_prob": (0.5, {}),
    "hidden_act": ("relu", {}),
    "layer_norm_eps": (1e-5, {}),
    "initializer_range": (0.01, {}),
    "item_embedding_init": ("normal", {}),
    "embedding_init_std": (0.5, {}),
    "timesteps": (4, {"sampler": "ddpm"}),  # below the default sampling_steps (5), which ddpm does not use
    "beta_schedule": ("linear", {}),
    "beta_start": (0.001, {"beta_schedule": "linear"}),
    "beta_end": (0.05, {"beta_schedule": "linear"}),
    "denoiser_type": ("mlp2", {}),
    "detach_target": (False, {}),
    "diffusion_loss_type": ("huber", {}),
    "uncond_prob": (0.0, {"guidance_weight": 0.0}),  # no null vector needed without guidance
    "guidance_weight": (4, {}),
    "sampler": ("ddim", {}),
    "sampling_steps": (50, {"sampler": "ddim", "timesteps": 50}),
    "ddim_eta": (1.0, {}),
    "train_neg_sample_args": (None, {}),
    "learning_rate": (0.001, {}),
    "window_stride": (50, {"MAX_ITEM_LIST_LENGTH": 20}),  # more than L: non-overlapping windows
    "flush_denormal": (True, {}),
    "train_timesteps": ("sampler", {}),
    "refit_last_step": (True, {"sampling_steps": 1}),
    "refit_features": (64, {"refit_last_step": True, "sampling_steps": 1}),
    "refit_code_size": (128, {"refit_last_step": True, "sampling_steps": 1}),
    "refit_last_item": (True, {"refit_last_step": True, "sampling_steps": 1, "refit_code_size": 64}),
    "refit_last_item_ridge": (0.5, {"refit_last_step": True, "sampling_steps": 1, "refit_code_size": 64,
                                    "refit_last_item": True}),
    "refit_last_item_lags": (5, {"refit_last_step": True, "sampling_steps": 1, "refit_code_size": 64,
                                 "refit_last_item": True}),
    "refit_last_item_decay": (1.0, {"refit_last_step": True, "sampling_steps": 1, "refit_code_size": 64,
                                    "refit_last_item": True}),
}

# (key, an invalid value, other settings, what the message must also say)
INVALID = [
    ("encoder_type", "rnn", {}, r"one of \['sasrec', 'paper', 'gru'\]"),
    ("window_stride", -1, {}, "an integer >= 0"),
    ("weight_init", "xavier", {}, r"one of \['normal', 'torch'\]"),
    ("code_size", -1, {}, "an integer >= 0"),
    ("svd_group_field", "", {}, "a field name"),
    ("code_size", 1.5, {}, "an integer >= 0"),
    ("generation_samples", 0, {}, "an integer >= 1"),
    ("n_layers", 0, {}, "an integer >= 1"),
    ("n_layers", True, {}, "an integer >= 1"),
    ("n_heads", 0, {}, "an integer >= 1"),
    ("n_heads", 3, {}, "hidden_size must be divisible by n_heads"),
    ("hidden_size", 0, {}, "an even integer >= 4"),
    ("hidden_size", 31, {}, "an even integer >= 4"),
    ("hidden_size", 2, {}, "an even integer >= 4"),
    ("hidden_size", 6, {"n_heads": 4}, "hidden_size must be divisible by n_heads"),
    ("inner_size", 1.5, {}, "an integer >= 1"),
    ("hidden_dropout_prob", 1.0, {}, r"a number in \[0, 1\)"),
    ("hidden_dropout_prob", "abc", {}, r"a number in \[0, 1\), got 'abc'"),
    ("attn_dropout_prob", -0.1, {}, r"a number in \[0, 1\)"),
    ("hidden_act", "softplus", {}, "one of"),
    ("layer_norm_eps", 0, {}, "a number > 0"),
    ("initializer_range", -1, {}, "a number > 0"),
    ("item_embedding_init", "xavier", {}, r"one of \['normal', 'svd'\]"),
    ("embedding_init_std", 0.0, {}, "a number > 0"),
    ("timesteps", 0, {}, "a positive integer"),
    ("timesteps", 2.5, {}, "a positive integer"),
    ("timesteps", 4, {}, "sampling_steps <= timesteps"),  # the default sampler, ddim, with its default K = 5
    ("beta_schedule", "quadratic", {}, "one of"),
    ("beta_start", 0.0, {}, r"a number in \(0, 1\)"),
    ("beta_start", 0.5, {"beta_schedule": "linear", "beta_end": 0.1}, "beta_start < beta_end"),
    ("beta_end", 1.0, {}, r"a number in \(0, 1\)"),
    ("denoiser_type", "unet", {}, "one of"),
    ("detach_target", "yes", {}, "True or False"),
    ("flush_denormal", "yes", {}, "True or False"),
    ("train_timesteps", "last", {}, r"one of \['all', 'sampler'\], got 'last'"),
    ("refit_last_step", "yes", {}, "True or False"),
    ("refit_last_step", True, {"sampling_steps": 5}, "needs denoiser_type 'mlp1', sampler 'ddim' and sampling_steps 1"),
    ("refit_features", -1, {}, "an integer >= 0"),
    ("refit_code_size", -1, {}, "an integer >= 0"),
    ("refit_code_size", 2.5, {}, "an integer >= 0"),
    ("refit_last_item", "yes", {}, "True or False"),
    ("refit_last_item_ridge", -1.0, {}, "a number >= 0"),
    ("refit_last_item_ridge", "lots", {}, "a number >= 0, got 'lots'"),
    ("refit_last_item_lags", 0, {}, "an integer >= 1"),
    ("refit_last_item_decay", -0.5, {}, "a number >= 0"),
    ("diffusion_loss_type", "ce", {}, "one of"),
    ("uncond_prob", 1.0, {}, r"a number in \[0, 1\)"),
    ("uncond_prob", 0.0, {"guidance_weight": 2.0}, "null vector"),
    ("guidance_weight", "abc", {}, "a number >= 0, got 'abc'"),
    ("guidance_weight", -1.0, {}, "a number >= 0"),
    ("sampler", "euler", {}, r"one of \['ddpm', 'ddim'\], got 'euler'"),
    ("sampling_steps", 0, {}, "an integer >= 1"),
    ("sampling_steps", 21, {"sampler": "ddim", "timesteps": 20}, "sampling_steps <= timesteps"),
    ("ddim_eta", 1.5, {}, r"a number in \[0, 1\]"),
    ("ddim_eta", -0.5, {}, r"a number in \[0, 1\]"),
    ("train_neg_sample_args", {"distribution": "uniform", "sample_num": 1}, {}, "no negative sampling"),
    ("learning_rate", 0, {}, "a number > 0"),
]


def dreamrec_yaml_keys():
    with open(properties_path("model", "DreamRec.yaml")) as f:
        return set(yaml.safe_load(f))


def build(tmp_path, settings):
    return Config(model="DreamRec", dataset="nowhere", config_dict={**settings, "data_path": str(tmp_path)})


def test_every_yaml_key_has_a_row_and_a_valid_and_invalid_case():
    from recbole_dreamrec.model.settings import SETTINGS

    keys = dreamrec_yaml_keys()
    assert {row[0] for row in SETTINGS} >= keys
    assert set(VALID) == keys
    assert {case[0] for case in INVALID} == keys


@pytest.mark.parametrize("key", sorted(VALID))
def test_valid_value_is_accepted(tmp_path, key):
    value, other = VALID[key]
    config = build(tmp_path, {**other, key: value})
    if key != "train_neg_sample_args":  # RecBole expands None into its "no sampling" dict
        assert config[key] == value


@pytest.mark.parametrize("key,value,other,says", INVALID, ids=[f"{c[0]}={c[1]!r}" for c in INVALID])
def test_invalid_value_names_the_key_at_config_time(tmp_path, key, value, other, says):
    with pytest.raises(ConfigError, match=rf"^DreamRec: .*\b{key}\b") as error:
        build(tmp_path, {**other, key: value})
    assert re.search(says, str(error.value)), str(error.value)


def test_check_config_is_importable_from_the_model():
    from recbole_dreamrec.model.settings import check_config

    assert DreamRec.check_config is check_config


def test_a_models_own_settings_on_one_data_set():
    """``properties/dataset/ml-1m/DreamRec.yaml``: DreamRec on ml-1m gets its values (a setting given still wins);
    other models on ml-1m and DreamRec on other data sets do not."""
    on_ml1m = yaml.safe_load(properties_path("dataset", "ml-1m", "DreamRec.yaml").read_text())
    assert on_ml1m and set(on_ml1m) <= set(yaml.safe_load(properties_path("model", "DreamRec.yaml").read_text()))
    dreamrec = Config("DreamRec", "ml-1m")
    assert all(dreamrec[key] == value for key, value in on_ml1m.items())
    assert Config("DreamRec", "ml-1m", config_dict={"hidden_size": 64})["hidden_size"] == 64
    assert Config("SASRec", "ml-1m")["hidden_size"] == 64 and Config("SASRec", "ml-1m")["diffusion_loss_type"] is None
    defaults = Config("DreamRec", "ml-100k")
    assert all(defaults[key] != value for key, value in on_ml1m.items())


def test_every_data_set_file_of_a_model_is_documented():
    pattern = re.compile(r"^\w+:\s.*#\s\((int|float|str|bool|dict|list)\)\s\S.*\.\s*$")
    files = sorted(properties_path("dataset").glob("*/*.yaml"))
    assert files
    for path in files:
        lines = [line.rstrip("\n") for line in path.open() if line.strip() and not line.startswith("#")]
        assert [line for line in lines if not pattern.match(line)] == [], path


def test_the_wide_preset_is_a_valid_documented_setting(tmp_path):
    """properties/presets/wide.yaml: every key documented as the model YAML's are, and valid together."""
    from recbole_dreamrec.model.settings import check_config

    path = properties_path("presets", "wide.yaml")
    pattern = re.compile(r"^\w+:\s.*#\s\((int|float|str|bool|dict|list)\)\s\S.*\.\s*$")
    lines = [line.rstrip("\n") for line in path.open() if line.strip() and not line.startswith("#")]
    assert lines and [line for line in lines if not pattern.match(line)] == []
    config = Config(model="DreamRec", dataset="nowhere", config_file_list=[str(path)],
                    config_dict={"data_path": str(tmp_path)})
    assert config["refit_last_step"] is True and config["hidden_size"] == 512 and config["sampling_steps"] == 1
    assert config["encoder_type"] == "gru"  # chosen on ml-100k's validation split over SASRec's Transformer
    check_config(config)


def test_a_checkpoint_saved_before_flush_denormal_existed_still_checks(tmp_path):
    """A saved config holds the settings of its time: ``flush_denormal`` absent is off, not an invalid value (old
    checkpoints must still load for guidance_sweep.py and load_data_and_model)."""
    from recbole_dreamrec.model.settings import check_config

    config = build(tmp_path, {})
    assert config["flush_denormal"] is False
    del config.final_config_dict["flush_denormal"]
    assert config["flush_denormal"] is None
    del config.final_config_dict["train_timesteps"]  # nor train_timesteps absent (all T, as before it)
    del config.final_config_dict["refit_last_step"]  # nor refit_last_step (no refit)
    check_config(config)
