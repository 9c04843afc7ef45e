"""Hyper-parameter search from files with RecBole's ``HyperTuning`` and the plugin's objective function.

Each trial runs :func:`recbole_dreamrec.quick_start.objective_function`. A trial that fails (for example a NaN
loss or an invalid setting) is recorded with its reason and the search goes on; a failure every trial would share
(the data missing, a failed download, a data set filtered to nothing) ends the search with that one error. The results are written as a
ranked Markdown table, a CSV file, the best parameters as a YAML file and RecBole's own result file.
"""

import math
import time
import traceback
from pathlib import Path

import yaml

from recbole_dreamrec.checks import load_dataset
from recbole_dreamrec.config import Config
from recbole_dreamrec.errors import ConfigError, DataError, DownloadError, InputNotFoundError, MissingDependencyError
from recbole_dreamrec.quick_start import objective_function
from recbole_dreamrec.reporting import plain, write_table

ALGOS = ("exhaustive", "random", "bayes")
SHARED_FAILURES = (DataError, DownloadError, InputNotFoundError)  # the data's, not a trial's settings


def require_hyperopt():
    try:
        import hyperopt  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(
            "hyper-parameter tuning needs hyperopt 0.2.5: pip install 'recbole-dreamrec[tune]'"
        ) from error


class TrialRecorder:
    """The objective handed to ``HyperTuning``: runs one trial, records it, and turns failures into bad scores."""

    def __init__(self, model, dataset, saved=True):
        self.model = model
        self.dataset = dataset
        self.saved = saved
        self.trials = []

    def __call__(self, params, config_file_list):
        config_dict = {**params, "model": self.model, "dataset": self.dataset}
        start = time.perf_counter()
        row = {"trial": len(self.trials) + 1, "params": dict(params)}
        try:
            result = objective_function(config_dict, config_file_list, saved=self.saved)
            if not math.isfinite(result["best_valid_score"]):
                raise ValueError(f"non-finite best valid score {result['best_valid_score']}")
            row.update(status="ok", error="", **_scores(result))
        except SHARED_FAILURES:
            raise  # the next trial would fail the same way
        except Exception as error:  # a failed trial must not end the search
            bigger = self._valid_score_bigger(config_dict, config_file_list)
            result = {
                "model": self.model,
                "best_valid_score": -math.inf if bigger else math.inf,
                "valid_score_bigger": bigger,
                "best_valid_result": {},
                "test_result": {},
            }
            reason = f"{type(error).__name__}: {error}".strip()
            row.update(status="failed", error=reason, traceback=traceback.format_exc(), **_scores(result))
        row["seconds"] = time.perf_counter() - start
        self.trials.append(row)
        return result

    def _valid_score_bigger(self, config_dict, config_file_list):
        try:
            return bool(Config(config_dict=config_dict, config_file_list=config_file_list)["valid_metric_bigger"])
        except Exception:
            return True

    def ranked(self):
        """Successful trials from best to worst valid score, then the failed ones."""
        ok = [t for t in self.trials if t["status"] == "ok"]
        bigger = ok[0]["valid_score_bigger"] if ok else True
        ok.sort(key=lambda t: t["best_valid_score"], reverse=bigger)
        return ok + [t for t in self.trials if t["status"] != "ok"]


def _scores(result):
    return {
        "best_valid_score": float(result["best_valid_score"]),
        "valid_score_bigger": bool(result["valid_score_bigger"]),
        "valid": {k: float(v) for k, v in result["best_valid_result"].items()},
        "test": {k: float(v) for k, v in result["test_result"].items()},
    }


def write_reports(trials, output_file):
    """Write ``<stem>.md`` (ranked table), ``<stem>.csv`` and ``<stem>.best.yaml`` next to ``output_file``.

    Returns:
        dict: the paths written, by kind.
    """
    output = Path(output_file)
    output.parent.mkdir(parents=True, exist_ok=True)
    param_names = sorted({name for t in trials for name in t["params"]})
    test_names = sorted({name for t in trials for name in t["test"]})
    header = ["rank", "status", *param_names, "best_valid_score", *[f"test_{n}" for n in test_names], "seconds", "error"]
    rows = []
    for rank, t in enumerate(trials, start=1):
        rows.append(
            [rank, t["status"], *[t["params"].get(n, "") for n in param_names], _fmt(t["best_valid_score"])]
            + [_fmt(t["test"].get(n)) for n in test_names]
            + [f"{t['seconds']:.1f}", t["error"]]
        )
    paths = {"markdown": output.with_suffix(".md"), "csv": output.with_suffix(".csv")}
    write_table(paths["markdown"], paths["csv"], header, rows)
    best = next((t for t in trials if t["status"] == "ok"), None)
    if best is not None:
        paths["best_yaml"] = output.with_suffix(".best.yaml")
        text = f"# best parameters of {len(trials)} trials (valid score {best['best_valid_score']:.4f})\n"
        paths["best_yaml"].write_text(text + yaml.safe_dump(plain(best["params"]), sort_keys=True))
    return paths


def _fmt(value):
    if value is None:
        return ""
    return f"{value:.4f}" if math.isfinite(value) else "failed"


def tune(model, dataset, params_file, config_file_list=None, algo="exhaustive", max_evals=100, early_stop=10,
         output_file=None, saved=True):
    """Search ``params_file`` (RecBole's format: ``name choice [..]``, ``uniform a,b``, ``loguniform a,b``).

    Returns:
        tuple: the ranked trials and the paths of the written files.
    """
    require_hyperopt()
    from recbole.trainer import HyperTuning

    if algo not in ALGOS:
        raise ConfigError(f"algo must be one of {list(ALGOS)}, got {algo!r}")
    if not Path(params_file).is_file():
        raise InputNotFoundError(f"params_file {params_file!r} does not exist")
    # settings and data that every trial shares are checked once, here: a missing dataset, a failed download or
    # a data set filtered to nothing is one message, not a search whose every trial failed (a download happens here)
    load_dataset(Config(model=model, dataset=dataset, config_file_list=config_file_list))
    output_file = output_file or f"hyper_results/{model}-{dataset}.result"
    recorder = TrialRecorder(model, dataset, saved=saved)
    tuner = HyperTuning(
        recorder,
        algo=algo,
        early_stop=early_stop,
        max_evals=max_evals,
        params_file=str(params_file),
        fixed_config_file_list=config_file_list,
    )
    tuner.run()
    Path(output_file).parent.mkdir(parents=True, exist_ok=True)
    tuner.export_result(output_file=str(output_file))
    ranked = recorder.ranked()
    paths = write_reports(ranked, output_file)
    paths["recbole"] = Path(output_file)
    return ranked, paths
