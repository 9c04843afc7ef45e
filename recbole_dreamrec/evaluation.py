"""Evaluate a trained checkpoint (DreamRec under several samplers, or any RecBole model) and time it."""

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


def evaluate_checkpoint(model_file, settings=(None,), split="test"):
    """Test (or validation) metrics and evaluation seconds of a checkpoint, once per sampler setting.

    Same weights, same data and the same seed for every setting.

    Args:
        model_file (str): a checkpoint saved by RecBole's trainer.
        settings (list[dict or None]): DreamRec sampler settings, each with ``sampler``, ``sampling_steps`` and
            ``ddim_eta``; ``None`` evaluates the model as saved (any model).
        split (str): ``test`` or ``valid``.

    Returns:
        list[dict]: one row per setting: the setting, ``seconds``, ``users`` and the metrics.
    """
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(model_file)
    eval_data = test_data if split == "test" else valid_data
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    rows = []
    for setting in settings:
        if setting is not None:
            model.sampler = build_sampler(
                setting["sampler"], model.diffusion, setting["sampling_steps"], setting["ddim_eta"]
            )
        init_seed(config["seed"], config["reproducibility"])
        start = time.perf_counter()
        result = trainer.evaluate(eval_data, load_best_model=False)
        seconds = time.perf_counter() - start
        row = {"model": config["model"], **(setting or {}), "seconds": seconds, "users": eval_data.sample_size}
        rows.append({**row, **{k: float(v) for k, v in result.items()}})
    return rows
