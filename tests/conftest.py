"""Shared fixtures: a small slice of RecBole's bundled ml-100k, and settings that keep every run short."""

import os
from pathlib import Path

import pytest

import recbole_dreamrec  # noqa: F401  (applies the compatibility fixes before RecBole is used)

ML_100K_INTER = Path(__import__("recbole").__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
TINY_USERS = 60


def write_tiny_ml100k(root):
    """Write ``root/ml-100k-tiny/ml-100k-tiny.inter``: every interaction of the first users of ml-100k."""
    folder = Path(root) / "ml-100k-tiny"
    folder.mkdir(parents=True, exist_ok=True)
    with open(ML_100K_INTER, encoding="utf-8") as src, open(folder / "ml-100k-tiny.inter", "w") as dst:
        dst.write(next(src))
        for line in src:
            if int(line.split("\t", 1)[0]) <= TINY_USERS:
                dst.write(line)
    return str(root)


@pytest.fixture(scope="session")
def tiny_data_path(tmp_path_factory):
    return write_tiny_ml100k(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def tiny_config_dict(tiny_data_path, tmp_path_factory):
    """Settings for short end-to-end runs on the tiny slice."""
    return {
        "data_path": tiny_data_path,
        "checkpoint_dir": str(tmp_path_factory.mktemp("saved")),
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 20,
        "epochs": 2,
        "train_batch_size": 256,
        "eval_batch_size": 4096,
        "show_progress": False,
        "timesteps": 20,
        "sampling_steps": 5,
        "seed": 7,
    }


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """Run in a temporary folder: RecBole writes ``log/`` and ``log_tensorboard/`` in the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _no_pytest_args_in_recbole(monkeypatch):
    """RecBole's Config reads ``--key=value`` from ``sys.argv``; keep pytest's own arguments out of it."""
    monkeypatch.setattr("sys.argv", [os.path.basename(__file__)])
