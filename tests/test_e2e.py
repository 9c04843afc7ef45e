"""End to end through the quick-start API and the CLI on a tiny slice of ml-100k: train, validate, test, reload."""

import json
import subprocess
import sys

import pytest

from recbole_dreamrec import run_recbole_dreamrec
from recbole_dreamrec.cli import main, parse_args

METRICS = {"recall@10", "ndcg@10", "mrr@10", "hit@10", "ndcg@20"}

RELOAD_AND_TEST = """
import json, sys
import recbole_dreamrec  # registers DreamRec with RecBole and applies the compatibility fixes
from recbole.quick_start import load_data_and_model
from recbole.utils import get_trainer
config, model, dataset, train_data, valid_data, test_data = load_data_and_model(sys.argv[1])
trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
result = trainer.evaluate(test_data, load_best_model=False)
print(json.dumps({k: float(v) for k, v in result.items()}))
"""


@pytest.fixture(scope="module")
def dreamrec_run(tiny_config_dict, tmp_path_factory):
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("run"))
    try:
        return run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny", config_dict=tiny_config_dict)
    finally:
        os.chdir(cwd)


def test_dreamrec_trains_validates_and_tests(dreamrec_run):
    assert METRICS <= set(dreamrec_run["test_result"])
    assert METRICS <= set(dreamrec_run["best_valid_result"])
    assert 0.0 <= dreamrec_run["test_result"]["ndcg@10"] <= 1.0
    assert dreamrec_run["best_valid_score"] == dreamrec_run["best_valid_result"]["ndcg@10"]
    assert dreamrec_run["config"]["eval_args"]["split"] == {"LS": "valid_and_test"}


def test_checkpoint_reloads_with_recbole_load_data_and_model(dreamrec_run, tmp_path):
    """A fresh process, RecBole's own loader: same test metrics as right after training."""
    out = subprocess.run(
        [sys.executable, "-c", RELOAD_AND_TEST, dreamrec_run["model_file"]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    reloaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert reloaded == pytest.approx({k: float(v) for k, v in dreamrec_run["test_result"].items()})


def test_recbole_baseline_through_the_same_entry_point(tiny_config_dict, in_tmp_dir):
    result = run_recbole_dreamrec(
        model="SASRec", dataset="ml-100k-tiny", config_dict={**tiny_config_dict, "epochs": 1}, saved=False
    )
    assert METRICS <= set(result["test_result"])
    assert result["config"]["train_neg_sample_args"]["distribution"] == "none"  # CE model: no negatives
    assert result["config"]["eval_args"]["split"] == {"LS": "valid_and_test"}


def test_cli_runs_with_config_file_and_key_value_flags(tiny_config_dict, in_tmp_dir):
    config_file = in_tmp_dir / "tiny.yaml"
    config_file.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in tiny_config_dict.items()))
    result = main(
        ["--model=DreamRec", "-d", "ml-100k-tiny", f"--config_files={config_file}", "--epochs=1", "--sampler=ddim"]
    )
    assert result["config"]["sampler"] == "ddim" and result["config"]["epochs"] == 1
    assert METRICS <= set(result["test_result"])


def test_cli_defaults_and_extra_settings():
    args, config_dict = parse_args([])
    assert (args.model, args.dataset, args.config_files) == ("DreamRec", "ml-100k", None)
    args, config_dict = parse_args(["-m", "SASRec", "--config_files", "a.yaml b.yaml", "--guidance_weight=4"])
    assert args.model == "SASRec" and args.config_files == "a.yaml b.yaml"
    assert config_dict == {"guidance_weight": "4"}
    with pytest.raises(SystemExit):
        parse_args(["--guidance_weight", "4"])  # extra settings must be --key=value
