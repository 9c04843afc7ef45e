"""Report writers: run records without machine-specific absolute paths, plots without global matplotlib state, and a
clear message when matplotlib is missing."""

import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

import recbole
from recbole_dreamrec.analysis import benchmark, tables
from recbole_dreamrec.errors import MissingDependencyError
from recbole_dreamrec.reporting import local_path, new_figure, portable

ROOT = Path(__file__).resolve().parents[1]
ABSOLUTE = re.compile(r"""(^|["'\s:\[])(/|[A-Za-z]:\\)\w""")


def strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


class FakeConfig:
    def __init__(self, settings):
        self.final_config_dict = settings


def test_portable_paths(in_tmp_dir):
    recbole_data = os.path.join(os.path.dirname(recbole.__file__), "config", "..", "dataset_example", "ml-100k")
    record = {
        "model_file": str(in_tmp_dir / "saved" / "m.pth"),
        "config": {"data_path": recbole_data, "other": os.path.join(os.path.dirname(in_tmp_dir), "data"),
                   "files": [str(in_tmp_dir / "a.yaml")], "sampler": "ddpm", "n": 3},
    }
    assert portable(record) == {
        "model_file": os.path.join("saved", "m.pth"),
        "config": {"data_path": "<recbole>/dataset_example/ml-100k", "other": os.path.join("..", "data"),
                   "files": ["a.yaml"], "sampler": "ddpm", "n": 3},
    }


def test_portable_paths_in_the_home_folder(tmp_path, monkeypatch):
    """A path in the home folder outside the working directory is written ``~/...`` (a checkout moved or laid anew
    on the same machine still finds it); one inside the working directory stays relative to it, also when the
    working directory is in the home folder."""
    home = tmp_path / "home"
    checkout = home / "project"
    checkout.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(checkout)
    saved = str(home / ".recbole_dreamrec" / "saved" / "m.pth")
    assert portable({"a": saved, "b": str(checkout / "saved" / "n.pth"), "c": str(tmp_path / "x")}) == {
        "a": "~/.recbole_dreamrec/saved/m.pth", "b": os.path.join("saved", "n.pth"),
        "c": os.path.join("..", "..", "x")}
    assert local_path("~/.recbole_dreamrec/saved/m.pth") == saved


def test_compare_writes_no_absolute_path(in_tmp_dir, monkeypatch):
    (in_tmp_dir / "saved").mkdir()
    checkpoint = in_tmp_dir / "saved" / "DreamRec-1.pth"
    checkpoint.write_bytes(b"")
    settings = {
        "data_path": os.path.join(os.path.dirname(recbole.__file__), "config", "..", "dataset_example", "ml-100k"),
        "checkpoint_dir": str(in_tmp_dir / "saved"),
        "seed": 1,
    }
    metrics = {"ndcg@10": 0.5, "hit@10": 0.7}

    def fake_run(model, dataset, config_file_list, config_dict, progress=None):
        return {"best_valid_result": metrics, "test_result": metrics, "epochs_trained": 1,
                "train_seconds_per_epoch": 1.0, "eval_seconds": 0.1, "num_params": 10,
                "model_file": str(checkpoint), "config": FakeConfig(settings)}

    monkeypatch.setattr(benchmark, "run_recbole_dreamrec", fake_run)
    config_file = in_tmp_dir / "shared.yaml"
    config_file.write_text("epochs: 1\n")
    benchmark.compare(["DreamRec"], "ml-100k", [str(config_file)], in_tmp_dir / "out", log=lambda line: None)

    record = json.loads((in_tmp_dir / "out" / "runs" / "DreamRec.json").read_text())
    assert [s for s in strings(record) if ABSOLUTE.search(s)] == []
    assert record["model_file"] == os.path.join("saved", "DreamRec-1.pth") and Path(record["model_file"]).is_file()
    assert record["config_files"] == ["shared.yaml"]
    assert record["config"]["data_path"] == "<recbole>/dataset_example/ml-100k"
    written = yaml.safe_load((in_tmp_dir / "out" / "configs" / "DreamRec.yaml").read_text())
    assert [s for s in strings(written) if ABSOLUTE.search(s)] == []


def test_committed_results_hold_no_absolute_path():
    files = sorted((ROOT / "benchmarks" / "results").rglob("*.json")) + sorted(
        (ROOT / "benchmarks" / "results").rglob("*.yaml")
    )
    assert files
    offending = []
    for path in files:
        data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        offending += [f"{path.relative_to(ROOT)}: {s}" for s in strings(data) if ABSOLUTE.search(s)]
    assert offending == []


def test_missing_matplotlib_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" now fails
    with pytest.raises(MissingDependencyError, match=re.escape("pip install 'recbole-dreamrec[bench]'")):
        new_figure()


def test_plots_leave_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("pdf")
    try:
        records = [{"model": "A", "test": {"ndcg@10": 0.1, "hit@10": 0.2}}]
        tables.plot_bars(records, tmp_path / "bars.png", "toy")
        assert matplotlib.get_backend() == "pdf"
        assert (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)


def test_atomic_writes_get_the_permissions_of_a_plain_write_and_leave_no_temporary_file(tmp_path):
    from recbole_dreamrec.reporting import atomic_write_text

    plain_file = tmp_path / "plain.md"
    plain_file.write_text("x")
    atomic_write_text(tmp_path / "table.md", "| a |\n")
    atomic_write_text(tmp_path / "table.md", "| b |\n")  # replacing keeps them too
    assert (tmp_path / "table.md").read_text() == "| b |\n"
    assert (tmp_path / "table.md").stat().st_mode & 0o777 == plain_file.stat().st_mode & 0o777
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.md", "table.md"]
