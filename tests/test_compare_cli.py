"""``benchmarks/compare.py`` as a command: a subprocess on the tiny slice, one epoch, and the files it writes."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_dreamrec.analysis.evaluation import evaluate_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"


@pytest.mark.slow
def test_compare_command_line_writes_runs_and_tables(tiny_config_dict, tmp_path, in_tmp_dir, package_env):
    config_file = tmp_path / "configs" / "tiny.yaml"
    config_file.parent.mkdir()
    config_file.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in tiny_config_dict.items()))  # epochs: 2
    out = tmp_path / "results"
    command = [sys.executable, str(SCRIPT), "--dataset", "ml-100k-tiny", "--models", "DreamRec,Pop",
               "--config_files", str(config_file), "--out", str(out), "--epochs=1"]
    done = subprocess.run(command, cwd=tmp_path, env=package_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    runs = {model: json.loads((out / "runs" / f"{model}.json").read_text()) for model in ("DreamRec", "Pop")}
    for model, record in runs.items():
        assert record["status"] == "ok" and record["dataset"] == "ml-100k-tiny"
        assert record["epochs_trained"] == 1 and record["config"]["epochs"] == 1  # --epochs=1 reached every model
        assert record["config_files"] == ["configs/tiny.yaml"]  # written relative to the folder it ran in

    # the table holds each run's own numbers, one row per model, in the order given
    with open(out / "results.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert [row[0] for row in rows] == ["DreamRec", "Pop"]
    columns = {name: header.index(next(h for h in header if "test" in h and name in h)) for name in ("ndcg@10", "hit@10")}
    for row in rows:
        for metric, column in columns.items():
            assert float(row[column]) == pytest.approx(runs[row[0]]["test"][metric], abs=0.5e-4)

    # the recorded numbers are the saved checkpoint's: evaluating it again gives them
    (again,) = evaluate_checkpoint(runs["DreamRec"]["model_file"])
    assert {k: again[k] for k in runs["DreamRec"]["test"]} == runs["DreamRec"]["test"]
