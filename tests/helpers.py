"""Helpers the test modules share (importable: pytest puts this folder on ``sys.path``)."""

from recbole.utils import init_seed

from recbole_dreamrec import DreamRec


def make_dreamrec(data, **overrides):
    """A DreamRec built on ``data`` (``(config, train_data, ...)``) with some settings changed for it alone, from seed
    0 (the same weights for the same settings)."""
    config, train_data = data[0], data[1]
    saved = {key: config[key] for key in overrides}
    config.final_config_dict.update(overrides)
    try:
        init_seed(0, True)
        return DreamRec(config, train_data._dataset)
    finally:
        config.final_config_dict.update(saved)


def first_batch(loader):
    return next(iter(loader))
