"""Evaluate one trained DreamRec checkpoint under several samplers (same weights, same data, same seed)."""

import time

from recbole.utils import get_trainer, init_seed

from recbole_dreamrec.model.samplers import build_sampler
from recbole_dreamrec.quick_start import load_data_and_model


def sampler_settings(timesteps, steps=(5, 10, 20, 50, 100), eta=0.0):
    """``ddpm`` with all T steps, then ``ddim`` at each K <= T (as dicts of ``sampler``, ``sampling_steps``,
    ``ddim_eta``)."""
    settings = [{"sampler": "ddpm", "sampling_steps": timesteps, "ddim_eta": 1.0}]
    settings += [{"sampler": "ddim", "sampling_steps": k, "ddim_eta": eta} for k in steps if k <= timesteps]
    return settings


def evaluate_samplers(model_file, settings, split="test"):
    """Test (or validation) metrics and evaluation seconds of a checkpoint under each sampler setting.

    Args:
        model_file (str): a DreamRec checkpoint saved by RecBole's trainer.
        settings (list[dict]): each with ``sampler``, ``sampling_steps`` and ``ddim_eta``.
        split (str): ``test`` or ``valid``.

    Returns:
        list[dict]: one row per setting: the setting, ``seconds``, ``users`` and the metrics.
    """
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(model_file)
    eval_data = test_data if split == "test" else valid_data
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    rows = []
    for setting in settings:
        model.sampler = build_sampler(
            setting["sampler"], model.diffusion, setting["sampling_steps"], setting["ddim_eta"]
        )
        init_seed(config["seed"], config["reproducibility"])
        start = time.perf_counter()
        result = trainer.evaluate(eval_data, load_best_model=False)
        seconds = time.perf_counter() - start
        rows.append({**setting, "seconds": seconds, "users": eval_data.sample_size, **dict(result)})
    return rows
