"""One test per RecBole-on-today's-stack fix (recbole_dreamrec/compat.py and the bounds in setup.py)."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_dreamrec import compat

ROOT = Path(__file__).resolve().parents[1]


def run_python(code, cwd):
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.parametrize("name", sorted(compat.NUMPY_ALIASES))
def test_restore_numpy_aliases_adds_missing_names(monkeypatch, name):
    monkeypatch.delattr(np, name, raising=False)
    assert name in compat.restore_numpy_aliases()
    assert getattr(np, name) is compat.NUMPY_ALIASES[name]


def test_restore_numpy_aliases_keeps_existing_names(monkeypatch):
    sentinel = object()
    monkeypatch.setattr(np, "float_", sentinel, raising=False)
    assert "float_" not in compat.restore_numpy_aliases()
    assert np.float_ is sentinel


def test_fresh_process_imports_recbole_and_runs_its_metrics_without_a_config(tmp_path):
    """ray (np.bool8, pkg_resources), Config (np.float_) and the metrics (np.float) in a process with no Config."""
    code = """
import numpy as np
import recbole_dreamrec
import recbole.quick_start
from recbole.evaluator.metrics import NDCG
pos_index = np.array([[False, True, False], [True, False, False]])
print(NDCG.metric_info(None, pos_index, np.array([1, 1]))[:, -1].tolist())
"""
    ndcg = eval(run_python(code, tmp_path).strip().splitlines()[-1])
    assert ndcg == pytest.approx([1 / np.log2(3), 1.0])


class Payload:
    def __init__(self, value):
        self.value = value


def load_as_module(module_name, path, **kwargs):
    scope = {"__name__": module_name, "torch": torch, "path": path, "kwargs": kwargs}
    exec("result = torch.load(path, **kwargs)", scope)
    return scope["result"]


def test_torch_load_defaults_to_full_unpickling_for_recbole_only(tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save({"config": Payload(3), "state_dict": {"w": torch.ones(2)}}, path)
    assert load_as_module("recbole.trainer.trainer", path)["config"].value == 3
    assert load_as_module("recbole.quick_start.quick_start", path)["config"].value == 3
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        load_as_module("user_code", path)  # everyone else keeps torch's safe default
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        load_as_module("recbole.trainer.trainer", path, weights_only=True)  # an explicit choice is kept


def test_importing_recbole_sequential_models_leaves_anomaly_detection_off(tmp_path):
    code = """
import torch
import recbole_dreamrec
import recbole.model.sequential_recommender.sine
print(torch.is_anomaly_enabled())
"""
    assert run_python(code, tmp_path).strip().splitlines()[-1] == "False"


def write_toy_dataset(data_path):
    """A toy dataset in RecBole's atomic format with a token_seq and a float item feature, one price missing;
    returns the config_dict that loads it."""
    folder = data_path / "toy"
    folder.mkdir()
    inter = ["user_id:token\titem_id:token\ttimestamp:float"]
    inter += [f"{u}\t{i}\t{u * 10 + i}" for u in range(1, 6) for i in range(1, 5)]
    (folder / "toy.inter").write_text("\n".join(inter) + "\n")
    items = ["item_id:token\ttags:token_seq\tprice:float", "1\ta b c\t1.0", "2\tb\t", "3\tc d\t3.0", "4\ta\t5.0"]
    (folder / "toy.item").write_text("\n".join(items) + "\n")
    return {
        "data_path": str(data_path),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "tags", "price"]},
        "MAX_ITEM_LIST_LENGTH": 5,
    }


def test_token_seq_features_and_nan_filling_load_correctly(tmp_path):
    """pandas < 3: with pandas 3, token_seq fields break and fillna(inplace=True) leaves NaNs (setup.py bound)."""
    from recbole.data import create_dataset

    from recbole_dreamrec import Config

    dataset = create_dataset(Config(model="DreamRec", dataset="toy", config_dict=write_toy_dataset(tmp_path)))
    item_feat = dataset.item_feat  # pandas DataFrame until the dataloaders are built
    tokens = {dataset.id2token("item_id", int(i)): list(tags) for i, tags in zip(item_feat["item_id"], item_feat["tags"])}
    assert {k: len(v) for k, v in tokens.items() if k != "[PAD]"} == {"1": 3, "2": 1, "3": 2, "4": 1}
    assert tokens["1"][1] == tokens["2"][0]  # the token "b" has one id
    prices = dict(zip(item_feat["item_id"].map(lambda i: dataset.id2token("item_id", int(i))), item_feat["price"]))
    assert not np.isnan(item_feat["price"].to_numpy()).any()
    assert prices["2"] == pytest.approx(3.0)  # the missing price is the column mean


def test_pandas_3_is_refused_with_a_clear_message():
    with pytest.raises(ImportError, match=r"pandas < 3 \(found 3.1.1\).*pip install 'pandas<3'"):
        compat.check_pandas_version("3.1.1")
    compat.check_pandas_version("2.3.3")  # supported: no error


@pytest.mark.parametrize("version", [(3, 12, 0), (3, 13, 1), (3, 8, 18)])
def test_python_outside_the_supported_range_is_refused_with_the_reason(version):
    found = ".".join(map(str, version))
    with pytest.raises(ImportError, match=rf"Python >= 3.9 and < 3.12 \(found {found}\): .*ray <= 2.6.3"):
        compat.check_python_version(version)


def test_supported_pythons_are_the_ones_setup_py_declares():
    for version in [(3, 9, 0), (3, 10, 13), (3, 11, 7)]:
        compat.check_python_version(version)  # no error
    compat.check_python_version()  # this interpreter
    assert 'python_requires=">=3.9,<3.12"' in (ROOT / "setup.py").read_text()


def test_importing_the_plugin_prints_nothing(tmp_path):
    """ray 2.6.3's pkg_resources warning (setuptools 81) would come before any message of a command line."""
    out = subprocess.run(
        [sys.executable, "-c", "import recbole_dreamrec"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""


def test_recbole_trainers_use_torch_amp_without_deprecation_warnings():
    """RecBole's trainer module calls ``torch.cuda.amp.GradScaler`` (every fit) and ``autocast`` (NCL), which
    torch deprecates with a FutureWarning in every log; the fix gives it the ``torch.amp`` equivalents on CUDA."""
    import recbole.trainer.trainer as recbole_trainer

    with pytest.warns(FutureWarning, match=r"torch\.cuda\.amp\.GradScaler"):
        torch.cuda.amp.GradScaler(enabled=False)  # what RecBole 1.2.1 calls: deprecated in this torch
    trainer = recbole_trainer.Trainer.__new__(recbole_trainer.Trainer)  # what _train_epoch reads before a batch
    trainer.model, trainer.config, trainer.enable_scaler = torch.nn.Linear(1, 1), {"single_spec": True}, False
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        assert trainer._train_epoch([], 0, loss_func=lambda interaction: None) is None  # builds its GradScaler
        scaler = recbole_trainer.amp.GradScaler(enabled=False)
        with recbole_trainer.amp.autocast(enabled=False):
            assert not torch.is_autocast_enabled("cuda")
    # what the deprecated alias builds: CUDA's scaler, the arguments passed through
    assert isinstance(scaler, torch.amp.GradScaler) and scaler._device == "cuda" and not scaler.is_enabled()


def test_loading_a_dataset_logs_no_pandas_3_future_warnings(tmp_path):
    """pandas 2 warns in every dataset load (RecBole's chained ``fillna(inplace=True)``, ``Series.agg(len)``)
    about pandas 3 behaviour; pandas 3 is refused (setup.py bound, :func:`compat.check_pandas_version`) and the
    values under pandas 2 are right (test above), so these warnings only clutter every log. Every other warning
    stays."""
    data_path = tmp_path / "data"
    data_path.mkdir()
    toy = write_toy_dataset(data_path)
    # pre-split files as the DreamRec converter writes them (benchmark_filename, item_id_list:token_seq)
    (data_path / "split").mkdir()
    for part, rows in {"train": ["1\t1\t1 2\t3", "2\t1\t1 2 3\t4"], "valid": ["3\t2\t2\t3"], "test": ["4\t3\t3 4\t1"]}.items():
        lines = ["row_id:token\tsession_id:token\titem_id_list:token_seq\titem_id:token", *rows]
        (data_path / "split" / f"split.{part}.inter").write_text("\n".join(lines) + "\n")
    split = {"data_path": str(data_path), "benchmark_filename": ["train", "valid", "test"],
             "alias_of_item_id": ["item_id_list"], "USER_ID_FIELD": "row_id",
             "load_col": {"inter": ["row_id", "item_id_list", "item_id"]}, "MAX_ITEM_LIST_LENGTH": 5}
    code = f"""
import warnings
import recbole_dreamrec
from recbole.data import create_dataset
from recbole_dreamrec import Config
with warnings.catch_warnings(record=True) as caught:
    sizes = [len(create_dataset(Config(model="DreamRec", dataset=name, config_dict=settings)).inter_feat)
             for name, settings in (("toy", {toy!r}), ("split", {split!r}))]
    warnings.warn_explicit("another FutureWarning", FutureWarning, "dataset.py", 1, module="recbole.data.dataset.dataset")
print(*sizes)
for w in caught:
    print(w.category.__name__, str(w.message).splitlines()[0])
"""
    lines = run_python(code, tmp_path).strip().splitlines()
    assert lines[-2:] == ["20 4", "FutureWarning another FutureWarning"], lines


def test_the_package_compiles_without_warnings():
    """An invalid escape in a string (``\\ s`` in reStructuredText) is a DeprecationWarning today, a SyntaxWarning
    from Python 3.12 and meant to become an error; none of the package's modules may have one."""
    package = Path(compat.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 10
    for source in sources:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compile(source.read_text(encoding="utf-8"), str(source), "exec")


def test_interaction_sort_keeps_recbole_order_without_numpy_deprecations():
    """RecBole sorted with ``np.argsort(<tensor>)``, which numpy 2 serves through the tensor's deprecated
    ``__array_wrap__`` (every sequential dataset build). The fixed sort gives RecBole's order: the last field first,
    stable, a descending field as the reversed ascending order (so its ties come out reversed)."""
    from recbole.data.interaction import Interaction

    def rows(**columns):
        return Interaction({name: torch.tensor(values) for name, values in columns.items()})

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inter = rows(r=[0, 1, 2, 3, 4], a=[2, 1, 2, 1, 3], b=[5, 6, 7, 6, 1], seq=[[2, 9], [1, 8], [2, 7], [1, 6], [3, 5]])
        inter.sort(["a", "b"], [True, False])
        assert inter["r"].tolist() == [3, 1, 2, 0, 4] and inter["seq"][:, 1].tolist() == [6, 8, 7, 9, 5]
        inter.sort("seq")  # a 2-d field: by its first column, stable
        assert inter["r"].tolist() == [3, 1, 2, 0, 4]
        inter.sort(["b"], ascending=False)
        assert inter["r"].tolist() == [2, 1, 3, 0, 4]  # b: 7, 6, 6, 5, 1; the tie (rows 3, 1 before) reversed
        assert inter["r"].dtype == torch.int64
    with pytest.raises(ValueError, match="is not exist"):
        inter.sort("missing")
    with pytest.raises(TypeError, match="Wrong type of ascending"):
        inter.sort("a", ascending="yes")
    with pytest.raises(ValueError, match="should have same length"):
        inter.sort(["a", "b"], [True, False, True])


def test_recbole_creates_directories_without_a_race_between_processes(tmp_path, monkeypatch):
    """RecBole's ``ensure_dir`` checked ``os.path.exists`` and then called ``os.makedirs``: in a DDP run every rank's
    ``init_logger`` creates ``log/<model>`` at once, and the rank that lost the race died with ``FileExistsError``
    (CI, 2026-11-29). Here the other process "wins" between the check and the call: the directory exists though the
    check said it did not."""
    import importlib

    import recbole.data.dataset.dataset  # noqa: F401  (every module that binds ensure_dir is loaded)
    import recbole.quick_start  # noqa: F401

    bound = sorted(name for name, module in list(sys.modules.items())
                   if name.startswith("recbole") and callable(getattr(module, "ensure_dir", None)))
    created_meanwhile = tmp_path / "log" / "DreamRec"
    created_meanwhile.mkdir(parents=True)
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: False if Path(p) == created_meanwhile else real_exists(p))
    for name in bound:
        importlib.import_module(name).ensure_dir(str(created_meanwhile))
    assert bound == sorted(compat.ENSURE_DIR_MODULES)  # the fix's list is every module that binds it
    fresh = tmp_path / "a" / "b"
    importlib.import_module("recbole.utils.logger").ensure_dir(str(fresh))
    assert fresh.is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):  # a file in the way is still an error
        importlib.import_module("recbole.trainer.trainer").ensure_dir(str(tmp_path / "file"))
