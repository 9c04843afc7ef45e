"""Known input errors: one readable line on stderr and exit status 2 from every command line; --debug (or
RECBOLE_DREAMREC_DEBUG=1) shows the traceback."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_dreamrec import cli, hyper_cli, inspection_cli
from recbole_dreamrec.errors import EXIT_USER_ERROR, ConfigError, InputNotFoundError, UserError

ROOT = Path(__file__).resolve().parents[1]


def load_script(name):
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(args, cwd, env=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "run_recbole_dreamrec.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_missing_dataset_is_one_line_on_stderr_without_traceback(tmp_path):
    out = run_script(["--dataset", "no-such-dataset", f"--data_path={tmp_path}"], cwd=tmp_path)
    assert out.returncode == EXIT_USER_ERROR
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.strip().splitlines() == [
        f"run_recbole_dreamrec.py: error: dataset 'no-such-dataset' not found: RecBole looked in "
        f"{tmp_path}/no-such-dataset and knows no download for it; put the atomic files in DIR/no-such-dataset/ "
        f"(e.g. DIR/no-such-dataset/no-such-dataset.inter) and pass --data_path=DIR (config key data_path)"
    ]
    assert not (tmp_path / "log").exists()  # refused before the logger (and its config dump) starts


@pytest.mark.parametrize("debug", [["--debug"], []])
def test_debug_flag_or_environment_shows_the_traceback(tmp_path, debug):
    env = {} if debug else {"RECBOLE_DREAMREC_DEBUG": "1"}
    out = run_script(["--dataset", "no-such-dataset", f"--data_path={tmp_path}", *debug], cwd=tmp_path, env=env)
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr
    assert "InputNotFoundError: dataset 'no-such-dataset' not found" in out.stderr


def test_non_numeric_setting_names_the_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--guidance_weight=abc", f"--data_path={tmp_path}"])
    assert exit_info.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].endswith(
        "error: DreamRec: guidance_weight must be a number >= 0, got 'abc'"
    )
    assert "Traceback" not in err
    with pytest.raises(ConfigError, match="guidance_weight must be a number >= 0, got 'abc'"):
        cli.main(["--guidance_weight=abc", f"--data_path={tmp_path}", "--debug"])


def test_unknown_model_and_missing_config_file_are_user_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--model=SasRec", f"--data_path={tmp_path}"])
    err = capsys.readouterr().err
    assert "error: unknown model 'SasRec' (names are case-sensitive); valid models: DreamRec, " in err
    with pytest.raises(InputNotFoundError, match="config file 'nope.yaml' not found"):
        cli.main(["--config_files=nope.yaml", "--debug"])


def guarded_cases(tmp_path):
    """(main, argv, message) of each command line on an input it diagnoses."""
    no_runs = tmp_path / "results"
    no_runs.mkdir()
    missing = str(tmp_path / "missing.pth")
    return [
        (hyper_cli.main, ["--params_file", str(tmp_path / "none.hyper")], "params_file"),
        (inspection_cli.main, ["oracle", "--model_file", missing, "--users", "1"], f"checkpoint {missing!r} not found"),
        (inspection_cli.main, ["readout", "--model_file", missing], f"checkpoint {missing!r} not found"),
        (inspection_cli.main, ["map", "--model_files", missing], f"checkpoint {missing!r} not found"),
        (load_script("compare").main, ["--config_files", "nope.yaml", "--out", str(tmp_path)],
         "config file 'nope.yaml' not found"),
        (load_script("speed").main, ["--results", str(no_runs)], "runs/DreamRec.json"),
        (load_script("masked_eval").main, ["--results", str(no_runs)], "no finished runs"),
    ]


def test_every_command_line_prints_known_errors_as_one_line(tmp_path, capsys):
    for main, argv, message in guarded_cases(tmp_path):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == EXIT_USER_ERROR, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, (argv, err)
        with pytest.raises(UserError, match=re.escape(message)):
            main([*argv, "--debug"])


def test_user_errors_are_still_the_builtin_exceptions():
    from recbole_dreamrec.errors import DataError, DownloadError, MissingDependencyError

    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)
    assert issubclass(InputNotFoundError, FileNotFoundError) and issubclass(DownloadError, ConnectionError)
    assert issubclass(MissingDependencyError, ImportError)


@pytest.mark.parametrize("setting", ["--epochs=-1", "--epochs=0", "--train_batch_size=0", "--eval_batch_size=-5"])
def test_settings_that_would_train_nothing_are_refused(tmp_path, capsys, setting):
    """``--epochs=-1`` used to train nothing, save the untrained model and print its metrics as a result."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([setting, "--model=Pop", f"--data_path={tmp_path}"])
    assert exit_info.value.code == EXIT_USER_ERROR
    key, value = setting[2:].split("=")
    assert capsys.readouterr().err.strip().splitlines() == [
        f"conftest.py: error: {key} must be an integer >= 1, got {value}"]  # (the program name is sys.argv[0])


def test_an_atomic_file_without_the_item_column_is_one_line(tmp_path):
    """A custom dataset whose header names the item column otherwise (``item:token``) ended in RecBole's 187-line
    ``KeyError: 'item_id'`` traceback."""
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "mydata.inter").write_text("user_id:token\titem:token\ttimestamp:float\n1\t5\t10\n1\t6\t11\n")
    out = run_script(["--dataset=mydata", f"--data_path={tmp_path}", "--epochs=1"], cwd=tmp_path)
    assert out.returncode == EXIT_USER_ERROR and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "run_recbole_dreamrec.py: error: mydata.inter: no column 'item_id' in the header ['user_id:token', "
        "'item:token', 'timestamp:float']; name it 'item_id:token' there, or set --ITEM_ID_FIELD=<the column's name>"]


def test_data_path_is_honoured_for_ml_100k(tmp_path):
    """RecBole reads its bundled ml-100k whatever ``data_path`` says; the plugin reads the one asked for."""
    from recbole_dreamrec import Config

    assert Config("Pop", "ml-100k", config_dict={"data_path": str(tmp_path)})["data_path"] == str(tmp_path / "ml-100k")
    assert Config("Pop", "ml-100k")["data_path"].endswith(os.path.join("dataset_example", "ml-100k"))
    with pytest.raises(UserError, match=f"dataset 'ml-100k' is not in {tmp_path}/ml-100k"):
        from recbole_dreamrec.checks import load_dataset

        load_dataset(Config("Pop", "ml-100k", config_dict={"data_path": str(tmp_path)}))


def test_tuning_on_data_every_trial_would_fail_on_is_one_message(tiny_config_dict, tmp_path, capsys, monkeypatch):
    """A data set filtered to nothing (likewise a missing or undownloadable one) is reported once, before the
    search, instead of a search whose every trial is recorded as failed."""
    monkeypatch.chdir(tmp_path)
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text("".join(f"{k}: {v!r}\n" for k, v in tiny_config_dict.items() if k != "load_col")
                     + "user_inter_num_interval: '[100000,inf)'\n")
    space = tmp_path / "space.hyper"
    space.write_text("guidance_weight choice [1.0,2.0]\n")
    with pytest.raises(SystemExit) as exit_info:
        hyper_cli.main(["--dataset=ml-100k-tiny", f"--config_files={fixed}", f"--params_file={space}"])
    assert exit_info.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{os.path.basename(sys.argv[0])}: error: dataset 'ml-100k-tiny': no interactions left after "
                   "filtering ({'val_interval': None, 'user_inter_num_interval': '[100000,inf)', "
                   "'item_inter_num_interval': '[0,inf)'})"]
    assert not (tmp_path / "hyper_results").exists()  # no search ran
