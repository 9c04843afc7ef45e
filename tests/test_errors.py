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
