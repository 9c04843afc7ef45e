"""Hyper-parameter search from files: a two-trial search on tiny data, one trial failing."""

import csv
import json

from pathlib import Path

import pytest
import yaml

from recbole_dreamrec.errors import InputNotFoundError
from recbole_dreamrec.hyper import require_hyperopt, tune
from recbole_dreamrec.hyper_cli import parse_args
from recbole_dreamrec.utils import properties_path


@pytest.fixture
def fixed_config_file(tiny_config_dict, in_tmp_dir):
    path = in_tmp_dir / "fixed.yaml"
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in {**tiny_config_dict, "epochs": 1}.items()))
    return str(path)


@pytest.mark.slow
def test_two_trial_search_ranks_records_failure_and_writes_best_yaml(fixed_config_file, in_tmp_dir):
    params_file = in_tmp_dir / "space.hyper"
    params_file.write_text("uncond_prob choice [0.1,1.5]\n")  # 1.5 is invalid: that trial fails
    ranked, paths = tune(
        "DreamRec", "ml-100k-tiny", str(params_file), config_file_list=[fixed_config_file],
        output_file=str(in_tmp_dir / "out" / "search.result"),
    )
    assert [t["status"] for t in ranked] == ["ok", "failed"]
    assert ranked[0]["params"] == {"uncond_prob": 0.1} and "ndcg@10" in ranked[0]["test"]
    assert "uncond_prob" in ranked[1]["error"] and "ConfigError" in ranked[1]["error"]

    rows = list(csv.reader(open(paths["csv"])))
    assert rows[0][:3] == ["rank", "status", "uncond_prob"] and [r[1] for r in rows[1:]] == ["ok", "failed"]
    assert "| 1 | ok | 0.1 |" in paths["markdown"].read_text()
    assert yaml.safe_load(paths["best_yaml"].read_text()) == {"uncond_prob": 0.1}
    assert "Valid result" in paths["recbole"].read_text()


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["random", "bayes"])
def test_random_and_bayes_search_from_the_command_line(algo, fixed_config_file, in_tmp_dir, capsys):
    import math

    from recbole_dreamrec.hyper_cli import main
    from recbole_dreamrec.quick_start import objective_function

    params_file = in_tmp_dir / "space.hyper"
    params_file.write_text("guidance_weight choice [0.0,3.0]\nlearning_rate loguniform -7,-5\n")
    ranked, paths = main([
        "--model", "DreamRec", "--dataset", "ml-100k-tiny", "--config_files", fixed_config_file,
        "--params_file", str(params_file), "--algo", algo, "--max_evals", "2",
        "--output_file", str(in_tmp_dir / "out" / "search.result"),
    ])
    assert [t["status"] for t in ranked] == ["ok", "ok"]  # max_evals trials, drawn from the space
    for trial in ranked:
        assert trial["params"]["guidance_weight"] in (0.0, 3.0)
        assert math.exp(-7) <= trial["params"]["learning_rate"] <= math.exp(-5)
    scores = [t["best_valid_score"] for t in ranked]
    assert scores == sorted(scores, reverse=True)

    # the best trial's numbers are those of a plain run with its parameters
    best = ranked[0]
    direct = objective_function({**best["params"], "model": "DreamRec", "dataset": "ml-100k-tiny"}, [fixed_config_file])
    assert best["best_valid_score"] == direct["best_valid_score"]
    assert best["test"] == {k: float(v) for k, v in direct["test_result"].items()}
    assert yaml.safe_load(paths["best_yaml"].read_text()) == best["params"]
    rows = list(csv.DictReader(open(paths["csv"])))
    assert [(r["rank"], r["status"]) for r in rows] == [("1", "ok"), ("2", "ok")]
    assert float(rows[0]["test_ndcg@10"]) == pytest.approx(best["test"]["ndcg@10"], abs=0.5e-4)
    assert "| 1 | ok |" in capsys.readouterr().out  # the ranked table is printed


def test_shipped_search_spaces_parse():
    from recbole.trainer import HyperTuning

    for name in ("DreamRec-quick.hyper", "DreamRec-paper.hyper"):
        space = HyperTuning._build_space_from_file(str(properties_path("hyper", name)))
        assert {"guidance_weight", "learning_rate"} <= set(space)


def test_the_readmes_example_files_are_valid_settings_and_a_search_space(tiny_config_dict):
    """``examples/dreamrec.yaml`` builds a DreamRec config with its values (and passes the settings checks);
    ``examples/dreamrec.hyper`` parses as RecBole's search space over keys DreamRec has."""
    from recbole.trainer import HyperTuning

    from recbole_dreamrec import Config

    root = Path(__file__).resolve().parents[1] / "examples"
    config = Config("DreamRec", "ml-100k-tiny", [str(root / "dreamrec.yaml")],
                    {k: v for k, v in tiny_config_dict.items() if k in ("data_path", "load_col")})
    assert (config["hidden_size"], config["diffusion_loss_type"], config["guidance_weight"]) == (128, "l2", 4.0)
    space = HyperTuning._build_space_from_file(str(root / "dreamrec.hyper"))
    assert set(space) == {"guidance_weight", "learning_rate", "hidden_size"} and set(space) <= set(config.final_config_dict)


def test_cli_defaults():
    args = parse_args([])
    assert args.model == "DreamRec" and args.algo == "exhaustive"
    assert args.params_file.endswith("DreamRec-quick.hyper")
    with pytest.raises(SystemExit):
        parse_args(["--algo", "grid"])


def test_missing_hyperopt_gives_install_hint(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hyperopt(name, *args, **kwargs):
        if name == "hyperopt":
            raise ImportError("No module named 'hyperopt'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hyperopt)
    with pytest.raises(ImportError, match=r"recbole-dreamrec\[tune\]"):
        require_hyperopt()


def test_a_missing_dataset_is_one_message_before_any_trial(tmp_path, in_tmp_dir):
    params = tmp_path / "p.hyper"
    params.write_text("learning_rate choice [0.001,0.005]\n")
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(f"data_path: {tmp_path / 'empty'}\n")
    with pytest.raises(InputNotFoundError, match=r"dataset 'no-such-data' not found: RecBole looked in .*empty"):
        tune("DreamRec", "no-such-data", params, config_file_list=[str(fixed)], output_file=str(tmp_path / "r.result"))
    assert set(tmp_path.iterdir()) == {params, fixed}  # no trial ran: nothing written
