"""Hyper-parameter search from files: a two-trial search on tiny data, one trial failing."""

import csv
import json

import pytest
import yaml

from recbole_dreamrec.hyper import require_hyperopt, tune
from recbole_dreamrec.hyper_cli import parse_args
from recbole_dreamrec.utils import properties_path


@pytest.fixture
def fixed_config_file(tiny_config_dict, in_tmp_dir):
    path = in_tmp_dir / "fixed.yaml"
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in {**tiny_config_dict, "epochs": 1}.items()))
    return str(path)


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


def test_shipped_search_spaces_parse():
    from recbole.trainer import HyperTuning

    for name in ("DreamRec-quick.hyper", "DreamRec-paper.hyper"):
        space = HyperTuning._build_space_from_file(str(properties_path("hyper", name)))
        assert {"guidance_weight", "learning_rate"} <= set(space)


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
