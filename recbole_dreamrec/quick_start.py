"""Quick-start API: one training-and-evaluation path shared by the CLI, hyper-parameter tuning and the tests."""

import logging
import sys
from logging import getLogger

from recbole.data import create_dataset, data_preparation
from recbole.quick_start import load_data_and_model  # noqa: F401  (re-exported: works for DreamRec checkpoints)
from recbole.utils import init_logger, init_seed, set_color

from recbole_dreamrec.config import Config
from recbole_dreamrec.trainer import with_timing
from recbole_dreamrec.utils import get_model, get_trainer


def run_recbole_dreamrec(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True):
    r"""Train a model (DreamRec or any RecBole model) on a dataset, evaluate it, and return the results.

    Args:
        model (str, optional): Model name. Defaults to ``None`` (then taken from the config).
        dataset (str, optional): Dataset name. Defaults to ``None`` (then taken from the config).
        config_file_list (list, optional): Config files used to modify experiment parameters.
        config_dict (dict, optional): Parameters dictionary used to modify experiment parameters.
        saved (bool, optional): Whether to save the best model and test it. Defaults to ``True``.

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``, ``model_file``
        (the saved checkpoint, or ``None``), ``config``, and the cost: ``num_params``, ``epochs_trained``,
        ``train_seconds_per_epoch`` (mean), ``eval_seconds`` (the final test evaluation).
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    return _train_and_test(config, saved=saved, verbose=True)


def objective_function(config_dict=None, config_file_list=None, saved=True):
    r"""The objective of RecBole's ``HyperTuning``: train and evaluate quietly with the given settings."""
    config = Config(config_dict=config_dict, config_file_list=config_file_list)
    init_seed(config["seed"], config["reproducibility"])
    logging.basicConfig(level=logging.ERROR)
    return _train_and_test(config, saved=saved, verbose=False)


def _train_and_test(config, saved, verbose):
    logger = getLogger()

    # dataset filtering and splitting
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    # model loading and initialization
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)

    # training and evaluation
    trainer = with_timing(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)
    show_progress = config["show_progress"] and verbose
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, verbose=verbose, saved=saved, show_progress=show_progress
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=show_progress)

    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "model": config["model"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "model_file": trainer.saved_model_file if saved else None,
        "config": config,
        "num_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "epochs_trained": len(trainer.train_epoch_seconds),
        "train_seconds_per_epoch": _mean(trainer.train_epoch_seconds),
        "eval_seconds": trainer.eval_seconds[-1] if trainer.eval_seconds else None,
    }


def _mean(values):
    return sum(values) / len(values) if values else None
