"""Side-by-side runs: several models, one dataset, one shared setting, one table.

Each finished model is written at once and atomically to ``<out>/runs/<Model>.json``; a later run skips models
already there (unless asked to redo them), so an interrupted comparison loses at most the model in progress.
Tables (Markdown, CSV) and a bar chart (PNG) are rebuilt from the finished runs after every model. Paths in the
records are written relative to the working directory (RecBole's bundled datasets as ``<recbole>/...``), so the
records of a checkout mean the same on another machine.
"""

import json
import os
import platform
import time
from pathlib import Path

import torch
import yaml

from recbole_dreamrec.errors import InputNotFoundError
from recbole_dreamrec.quick_start import run_recbole_dreamrec
from recbole_dreamrec.reporting import atomic_write_text, new_figure, plain, portable, write_table

TABLE_METRICS = ("recall@10", "mrr@10", "ndcg@10", "hit@10", "recall@20", "mrr@20", "ndcg@20", "hit@20")


def model_override_file(config_dir, model):
    """The per-model override file ``<config_dir>/models/<Model>.yaml``, or ``None``."""
    if config_dir is None:
        return None
    path = Path(config_dir) / "models" / f"{model}.yaml"
    return str(path) if path.is_file() else None


def machine_info():
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return {"device": device, "platform": platform.platform(), "torch": torch.__version__}


def run_model(model, dataset, config_file_list, config_dict):
    """Train and test one model; a record of what it scored, what it cost and the exact config it ran with."""
    start = time.perf_counter()
    record = {"model": model, "dataset": dataset, "config_files": list(config_file_list)}
    try:
        result = run_recbole_dreamrec(model, dataset, config_file_list, dict(config_dict))
    except Exception as error:  # one broken model must not end the comparison
        record.update(status="failed", error=f"{type(error).__name__}: {error}")
    else:
        record.update(
            status="ok",
            best_valid={k: float(v) for k, v in result["best_valid_result"].items()},
            test={k: float(v) for k, v in result["test_result"].items()},
            epochs_trained=result["epochs_trained"],
            train_seconds_per_epoch=result["train_seconds_per_epoch"],
            eval_seconds=result["eval_seconds"],
            num_params=result["num_params"],
            model_file=os.path.abspath(result["model_file"]),
            config=plain(result["config"].final_config_dict),
        )
    record.update(wall_seconds=time.perf_counter() - start, machine=machine_info(), finished=time.strftime("%F %T"))
    return portable(record)


def compare(models, dataset, config_file_list, out_dir, config_dict=None, redo=(), log=print, metrics=TABLE_METRICS):
    """Run ``models`` one after another (skipping finished ones) and rebuild the tables after each.

    Args:
        models (list[str]): model names.
        dataset (str): dataset name.
        config_file_list (list[str]): the shared setting; ``<dir of the first file>/models/<Model>.yaml`` is added
            for a model when it exists (its own overrides).
        out_dir (str): where ``runs/``, ``configs/`` and the tables go.
        config_dict (dict, optional): settings for every model (e.g. ``epochs`` for a smoke run).
        redo (iterable[str]): models to run again although finished (``"all"`` for every model).
        metrics (iterable[str]): the test metrics in the tables (the first two are also drawn).

    Returns:
        list[dict]: the records of ``models``, in order.
    """
    missing = [f for f in config_file_list if not Path(f).is_file()]
    if missing:
        raise InputNotFoundError(f"config file {missing[0]!r} not found")
    out_dir = Path(out_dir)
    config_dir = Path(config_file_list[0]).parent if config_file_list else None
    redo = set(models) if "all" in redo else set(redo)
    records, start = [], time.perf_counter()
    for n, model in enumerate(models, start=1):
        run_file = out_dir / "runs" / f"{model}.json"
        if run_file.is_file() and model not in redo:
            log(f"[{n}/{len(models)}] {model}: finished before, skipped ({run_file})")
            records.append(json.loads(run_file.read_text()))
            continue
        files = list(config_file_list) + [f for f in [model_override_file(config_dir, model)] if f]
        log(f"[{n}/{len(models)}] {model}: running with {files} (elapsed {time.perf_counter() - start:.0f}s)")
        record = run_model(model, dataset, files, config_dict or {})
        if record["status"] == "ok":
            atomic_write_text(out_dir / "configs" / f"{model}.yaml", yaml.safe_dump(record["config"], sort_keys=True))
        atomic_write_text(run_file, json.dumps(record, indent=1))
        log(f"[{n}/{len(models)}] {model}: {record['status']} in {record['wall_seconds']:.0f}s")
        records.append(record)
        write_tables(records, out_dir, dataset, metrics)
    write_tables(records, out_dir, dataset, metrics)
    return records


def valid_metric(records):
    """The validation metric the runs were selected on (the config's ``valid_metric``), lower case."""
    for r in records:
        if r["status"] == "ok" and r.get("config", {}).get("valid_metric"):
            return str(r["config"]["valid_metric"]).lower()
    return "ndcg@10"


def table_rows(records, metrics=TABLE_METRICS):
    selected_on = valid_metric(records)
    header = ["model", "status", "epochs", "s/epoch", "eval s", "params"]
    header += [f"valid {selected_on}"] + [f"test {m}" for m in metrics]
    rows = []
    for r in records:
        if r["status"] != "ok":
            rows.append([r["model"], "failed: " + r["error"][:80]] + [""] * (len(header) - 2))
            continue
        rows.append(
            [r["model"], "ok", r["epochs_trained"], _num(r["train_seconds_per_epoch"], 1), _num(r["eval_seconds"], 2),
             r["num_params"], _num(r["best_valid"].get(selected_on))]
            + [_num(r["test"].get(m)) for m in metrics]
        )
    return header, rows


def _num(value, digits=4):
    return "" if value is None else f"{value:.{digits}f}"


def write_tables(records, out_dir, dataset, metrics=TABLE_METRICS):
    """``results.md``, ``results.csv`` and ``results.png`` (the first two test metrics by model) in ``out_dir``."""
    out_dir = Path(out_dir)
    header, rows = table_rows(records, metrics)
    machines = sorted({r["machine"]["device"] for r in records})
    write_table(
        out_dir / "results.md",
        out_dir / "results.csv",
        header,
        rows,
        before=[f"# {dataset}: test metrics at the best validation epoch", ""],
        after=["", f"Machine: {', '.join(machines)}. Configs: `configs/<Model>.yaml`; raw records: `runs/`."],
    )
    plot_bars([r for r in records if r["status"] == "ok"], out_dir / "results.png", dataset, metrics[:2])


def plot_bars(records, path, dataset, metrics=("ndcg@10", "hit@10")):
    fig = new_figure(figsize=(max(4, 1.1 * len(records) + 2), 3.5))
    ax = fig.subplots()
    width = 0.4
    names = [r["model"] for r in records]
    for offset, metric in zip((-width / 2, width / 2), metrics):
        label = metric.replace("hit", "HR").replace("ndcg", "NDCG").replace("recall", "Recall").replace("mrr", "MRR")
        ax.bar([i + offset for i in range(len(records))], [r["test"].get(metric, 0) for r in records], width,
               label=label)
    ax.set_xticks(range(len(records)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("test metric")
    ax.set_title(f"{dataset}: test " + " and ".join(m.upper() for m in metrics))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
