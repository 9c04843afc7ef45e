"""DreamRec's settings: one row per key of ``properties/model/DreamRec.yaml`` saying which values are valid.

:func:`check_config` runs when the plugin's ``Config`` is built (before any data loads) and again when the model is
built; an invalid value raises :class:`~recbole_dreamrec.errors.ConfigError` (a ``ValueError``) naming the key, the
allowed values and the value given. To add a setting, add one row to :data:`SETTINGS` (and its line to the YAML
file); a condition between several keys is one row of :data:`RULES`.
"""

import math
import numbers

from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.model.denoisers import DENOISERS
from recbole_dreamrec.model.diffusion import BETA_SCHEDULES, LOSS_TYPES, TRAIN_TIMESTEPS
from recbole_dreamrec.model.encoders import ENCODER_TYPES
from recbole_dreamrec.model.item_init import ITEM_EMBEDDING_INITS
from recbole_dreamrec.model.samplers import SAMPLERS

HIDDEN_ACTS = ("gelu", "relu", "swish", "tanh", "sigmoid")  # RecBole's TransformerLayer activations
WEIGHT_INITS = ("normal", "torch")  # RecBole's N(0, initializer_range^2), or PyTorch's defaults (the DreamRec code)


def integer(low, even=False):
    """Valid when an integer (not a bool) ``>= low`` (and even, if asked)."""
    return lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low and not (even and v % 2)


def number(low=-math.inf, high=math.inf, low_open=False, high_open=False):
    """Valid when a finite real number (not a bool) in the interval from ``low`` to ``high``."""

    def valid(v):
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
            return False
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return valid


def one_of(choices):
    return lambda v: isinstance(v, str) and v in choices


def optional_name(v):
    return v is None or (isinstance(v, str) and v != "")


def boolean(v):
    return isinstance(v, bool)


def optional_boolean(v):
    """A bool, or absent (``None``): a setting newer than a checkpoint's saved config, off there."""
    return v is None or isinstance(v, bool)


def optional_integer(low):
    """An integer ``>= low``, or absent (``None``): a setting newer than a checkpoint's saved config, 0 there."""
    return lambda v: v is None or integer(low)(v)


def optional_number(low):
    """A number ``>= low``, or absent (``None``): a setting newer than a checkpoint's saved config."""
    return lambda v: v is None or number(low)(v)


def optional_one_of(choices):
    """One of ``choices``, or absent (``None``): a setting newer than a checkpoint's saved config, its first choice
    there."""
    return lambda v: v is None or one_of(choices)(v)


def no_negative_sampling(v):
    """RecBole's ``train_neg_sample_args`` after its ``Config`` expanded ``~``: no sampler."""
    return v is None or (isinstance(v, dict) and v.get("distribution") in (None, "none"))


# key                     valid when                                   allowed values, as the message says them
SETTINGS = (
    # guidance encoder
    ("encoder_type",          one_of(ENCODER_TYPES),                     f"one of {list(ENCODER_TYPES)}"),
    ("n_layers",              integer(1),                                "an integer >= 1"),
    ("n_heads",               integer(1),                                "an integer >= 1"),
    ("hidden_size",           integer(4, even=True),                     "an even integer >= 4 (step embedding)"),
    ("inner_size",            integer(1),                                "an integer >= 1"),
    ("hidden_dropout_prob",   number(0, 1, high_open=True),              "a number in [0, 1)"),
    ("attn_dropout_prob",     number(0, 1, high_open=True),              "a number in [0, 1)"),
    ("hidden_act",            one_of(HIDDEN_ACTS),                       f"one of {list(HIDDEN_ACTS)}"),
    ("layer_norm_eps",        number(0, low_open=True),                  "a number > 0"),
    ("initializer_range",     number(0, low_open=True),                  "a number > 0"),
    ("weight_init",           one_of(WEIGHT_INITS),                      f"one of {list(WEIGHT_INITS)}"),
    ("item_embedding_init",   one_of(ITEM_EMBEDDING_INITS),              f"one of {list(ITEM_EMBEDDING_INITS)}"),
    ("embedding_init_std",    number(0, low_open=True),                  "a number > 0"),
    ("svd_group_field",       optional_name,                             "~ (the user id) or a field name"),
    ("code_size",             integer(0),                                "an integer >= 0 (0: the item embeddings)"),
    # diffusion
    ("timesteps",             integer(1),                                "a positive integer"),
    ("beta_schedule",         one_of(BETA_SCHEDULES),                    f"one of {list(BETA_SCHEDULES)}"),
    ("beta_start",            number(0, 1, low_open=True, high_open=True), "a number in (0, 1)"),
    ("beta_end",              number(0, 1, low_open=True, high_open=True), "a number in (0, 1)"),
    ("denoiser_type",         one_of(DENOISERS),                         f"one of {sorted(DENOISERS)}"),
    ("detach_target",         boolean,                                   "True or False"),
    ("diffusion_loss_type",   one_of(LOSS_TYPES),                        f"one of {list(LOSS_TYPES)}"),
    ("train_timesteps",       optional_one_of(TRAIN_TIMESTEPS),          f"one of {list(TRAIN_TIMESTEPS)}"),
    # classifier-free guidance
    ("uncond_prob",           number(0, 1, high_open=True),              "a number in [0, 1)"),
    ("guidance_weight",       number(0),                                 "a number >= 0"),
    # sampling
    ("sampler",               one_of(SAMPLERS),                          f"one of {list(SAMPLERS)}"),
    ("sampling_steps",        integer(1),                                "an integer >= 1"),
    ("generation_samples",    integer(1),                                "an integer >= 1"),
    ("ddim_eta",              number(0, 1),                              "a number in [0, 1]"),
    # training
    ("train_neg_sample_args", no_negative_sampling,                      "~ (DreamRec uses no negative sampling)"),
    ("learning_rate",         number(0, low_open=True),                  "a number > 0"),
    ("window_stride",         integer(0),                                "an integer >= 0 (0: RecBole's rows)"),
    ("flush_denormal",        optional_boolean,                          "True or False"),
    ("refit_last_step",       optional_boolean,                          "True or False"),
    ("refit_features",        optional_integer(0),                       "an integer >= 0 (0: the affine read)"),
    ("refit_code_size",       optional_integer(0),                       "an integer >= 0 (0: the model's own codes)"),
    ("refit_last_item",       optional_boolean,                          "True or False"),
    ("refit_last_item_ridge", optional_number(0),                        "a number >= 0"),
    ("refit_last_item_lags",  optional_integer(1),                       "an integer >= 1"),
    ("refit_last_item_decay", optional_number(0),                        "a number >= 0"),
)  # fmt: skip

# keys                            valid when (all keys above valid)                              what must hold
RULES = (
    (("hidden_size", "n_heads"),      lambda c: c["hidden_size"] % c["n_heads"] == 0,
     "hidden_size must be divisible by n_heads"),
    (("sampling_steps", "timesteps"), lambda c: c["sampler"] != "ddim" or c["sampling_steps"] <= c["timesteps"],
     "sampler 'ddim' needs sampling_steps <= timesteps (K <= T)"),
    (("beta_start", "beta_end"),      lambda c: c["beta_schedule"] != "linear" or c["beta_start"] < c["beta_end"],
     "the linear beta_schedule needs beta_start < beta_end"),
    (("refit_last_step", "denoiser_type", "sampler", "sampling_steps"),
     lambda c: not c["refit_last_step"] or (c["denoiser_type"] == "mlp1" and c["sampler"] == "ddim"
                                            and c["sampling_steps"] == 1),
     "refit_last_step refits the one-step oracle of the linear denoiser: it needs denoiser_type 'mlp1', sampler "
     "'ddim' and sampling_steps 1; set refit_last_step: False to read it otherwise (ml-1m's defaults turn it on)"),
    (("uncond_prob", "guidance_weight"), lambda c: c["guidance_weight"] == 0 or c["uncond_prob"] > 0,
     "guidance_weight > 0 needs uncond_prob > 0: with uncond_prob 0 the null vector that guidance subtracts is never "
     "trained (use guidance_weight: 0 for a purely conditional model)"),
)  # fmt: skip


def check_config(config):
    r"""Raise :class:`~recbole_dreamrec.errors.ConfigError` naming the key, its allowed values and the value given,
    for the first invalid DreamRec setting (a row of :data:`SETTINGS`, then a rule of :data:`RULES`)."""
    for key, valid, allowed in SETTINGS:
        value = config[key]
        if not valid(value):
            raise ConfigError(f"DreamRec: {key} must be {allowed}, got {value!r}")
    for keys, holds, requirement in RULES:
        if not holds(config):
            given = ", ".join(f"{key}={config[key]!r}" for key in keys)
            raise ConfigError(f"DreamRec: {requirement}, got {given}")
