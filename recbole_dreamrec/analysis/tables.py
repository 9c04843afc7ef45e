"""The tables and charts of side-by-side runs (:mod:`recbole_dreamrec.analysis.benchmark`): the finished runs'
Markdown and CSV tables with their cost columns, the unfinished runs' table from their progress files, the bar chart
of test metrics and the anytime plot (validation metric against training seconds, wall-clock or CPU)."""

import json
from pathlib import Path

import yaml

from recbole_dreamrec.reporting import machine_info, markdown_table, new_figure, write_table


def load_progress(path):
    """A progress file's content (``runs/<name>.progress.json``), or ``None`` (absent or unreadable)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


TABLE_METRICS = ("recall@10", "mrr@10", "ndcg@10", "hit@10", "recall@20", "mrr@20", "ndcg@20", "hit@20")


def sum_or_none(values):
    """The sum of ``values``, or ``None`` where one of them is unknown (``None``)."""
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def cpu_seconds_per_epoch(history):
    """The mean CPU seconds of a training epoch over the validated epochs of ``history`` that recorded them (runs
    begun before CPU time was recorded have them for their later epochs only), or ``None`` (none recorded). An
    entry of several epochs (``eval_step`` > 1) counts as many."""
    known, epochs, previous = 0.0, 0, -1
    for h in history:
        if h.get("train_cpu_seconds") is not None:
            known, epochs = known + h["train_cpu_seconds"], epochs + h["epoch"] - previous
        previous = h["epoch"]
    return known / epochs if epochs else None


def valid_metric(records):
    """The validation metric the runs were selected on (the config's ``valid_metric``), lower case."""
    for r in records:
        if r["status"] == "ok" and r.get("config", {}).get("valid_metric"):
            return str(r["config"]["valid_metric"]).lower()
    return "ndcg@10"


def table_rows(records, metrics=TABLE_METRICS):
    selected_on = valid_metric(records)
    header = ["model", "status", "epochs", "stopped by", "s/epoch", "CPU s/epoch", "train+valid s", "eval s", "params"]
    header += [f"valid {selected_on}"] + [f"test {m}" for m in metrics]
    rows = []
    for r in records:
        if r["status"] != "ok":
            rows.append([r["model"], "failed: " + r["error"][:80]] + [""] * (len(header) - 2))
            continue
        stopped = {True: "early stopping", False: f"epoch budget ({r.get('epoch_budget')})"}
        stopped = stopped.get(r.get("stopped_early"), "")
        spent = r["train_seconds"] + r["valid_seconds"] if "train_seconds" in r else None
        rows.append(
            [r["model"], "ok", r["epochs_trained"], stopped, _num(r["train_seconds_per_epoch"], 1),
             _num(r.get("train_cpu_seconds_per_epoch"), 1), _num(spent, 0),
             _num(r["eval_seconds"], 2), r["num_params"], _num(r["best_valid"].get(selected_on))]
            + [_num(r["test"].get(m)) for m in metrics]
        )
    return header, rows


def _num(value, digits=4):
    return "" if value is None else f"{value:.{digits}f}"


def published_rows(out_dir, header, metrics):
    """Rows of ``<out_dir>/published.yaml`` (results published elsewhere for the same data setting, e.g. RecBole's
    tuned ML-1M numbers), one per model, labelled ``<Model> (published)`` with status ``published``: beside the
    measured rows, never in place of one. Their test metrics where the file has them, nothing else. Returns the rows
    and the file's ``source`` line (``None`` without a file)."""
    path = Path(out_dir) / "published.yaml"
    if not path.is_file():
        return [], None
    published = yaml.safe_load(path.read_text()) or {}
    rows = []
    for model, values in (published.get("models") or {}).items():
        row = [f"{model} (published)", "published"] + [""] * (len(header) - 2 - len(metrics))
        rows.append(row + [_num(values.get(m)) for m in metrics])
    return rows, published.get("source")


def write_tables(records, out_dir, dataset, metrics=TABLE_METRICS):
    """``results.md``, ``results.csv``, ``results.png`` (the first two test metrics by model) and ``anytime.png``
    (the validation curves of finished and unfinished runs, where any has one) in ``out_dir``; the rows of
    ``published.yaml`` (:func:`published_rows`), where the folder has one, follow the measured ones."""
    out_dir = Path(out_dir)
    header, rows = table_rows(records, metrics)
    published, source = published_rows(out_dir, header, metrics)
    rows += published
    machines = sorted({r["machine"]["device"] for r in records}) or [machine_info()["device"]]
    unfinished = unfinished_runs(out_dir, {r["model"] for r in records})
    after = ["", f"Machine: {', '.join(machines)}. Configs: `configs/<Model>.yaml`; raw records: `runs/`."]
    if source:
        after += ["", f"Rows marked published were not measured here: {source}"]
    if unfinished:
        after += ["", "## Unfinished runs", "",
                  "From `runs/<Model>.progress.json`, rewritten after every validation; the same command continues "
                  "them from their last checkpoint. Epochs counted from 1; seconds over every session.", "",
                  *markdown_table(*unfinished_rows(unfinished, valid_metric(records)))]
    write_table(out_dir / "results.md", out_dir / "results.csv", header, rows,
                before=[f"# {dataset}: test metrics at the best validation epoch", ""], after=after)
    plot_bars([r for r in records if r["status"] == "ok"], out_dir / "results.png", dataset, metrics[:2])
    curves = [(r["model"], r["history"], True, r.get("cpu_cost")) for r in records
              if r["status"] == "ok" and r.get("history")]
    curves += [(state["model"], state["history"], False, None) for state in unfinished]  # cpu_cost: finished runs'
    if curves:
        plot_anytime(curves, out_dir / "anytime.png", dataset, valid_metric(records))


def unfinished_runs(out_dir, finished=()):
    """The progress files' contents of the runs in ``out_dir/runs`` that are not ``finished`` and have validated
    at least one epoch, by model name."""
    states = [load_progress(path) for path in sorted(Path(out_dir, "runs").glob("*.progress.json"))]
    return [s for s in states if s and s.get("history") and s.get("model") not in set(finished)]


def best_validation(history):
    """The index in ``history`` of the validation whose checkpoint RecBole keeps as the best: the last of equal best
    scores, since RecBole's early stopping counts a score equal to the best as a gain (it saves that checkpoint and
    starts counting the validations without gain again). Scores are compared as RecBole compares them, rounded to
    its ``metric_decimal_place``."""
    return max(range(len(history)), key=lambda i: (history[i]["valid_score"], i))


def unfinished_rows(states, metric="ndcg@10"):
    """A table of unfinished runs: epochs trained, the best and the last validation score, the validations since the
    best (early stopping counts them up to ``stopping_step``), the training seconds so far, the CPU seconds of a
    training epoch (over the epochs that recorded them), the wall-clock seconds so far, the sessions."""
    header = ["model", "epochs", f"best valid {metric} (epoch)", "last valid", "validations without gain",
              "train+valid s", "CPU s/epoch", "wall s", "sessions"]
    rows = []
    for state in states:
        history = state["history"]
        best = best_validation(history)
        metric_here = state.get("valid_metric") or metric
        rows.append([
            state["model"] if metric_here == metric else f"{state['model']} ({metric_here})",
            history[-1]["epoch"] + 1,
            f"{history[best]['valid_score']:.4f} ({history[best]['epoch'] + 1})",
            f"{history[-1]['valid_score']:.4f}",
            len(history) - 1 - best,
            _num(sum(h["train_seconds"] + h["valid_seconds"] for h in history), 0),
            _num(cpu_seconds_per_epoch(history), 1),
            _num(state.get("wall_seconds"), 0),
            state.get("sessions", ""),
        ])
    return header, rows


def _has_cpu_seconds(history, cost=None):
    """Whether ``history`` recorded the CPU seconds of at least one training epoch and one validation, or ``cost``
    (a run's :func:`measure_cpu_cost`) has both."""
    if cost and cost.get("train_cpu_seconds_per_epoch") is not None and cost.get("valid_cpu_seconds") is not None:
        return True
    return (any(h.get("train_cpu_seconds") is not None for h in history)
            and any(h.get("valid_cpu_seconds") is not None for h in history))


def anytime_curve(history, clock="wall", cost=None):
    """Cumulative training seconds (validations included) at each validated epoch, and the validation scores.

    ``clock="cpu"``: the CPU seconds instead (:class:`~recbole_dreamrec.trainer.TimingMixin`), which do not depend
    on what else the machine ran; an entry without them (a run begun before they were recorded) counts the run's
    mean over the entries with them, training per epoch and validation per validation, or, where it has none,
    ``cost``: the run's cost measured afterwards (:func:`measure_cpu_cost`).
    """
    if clock == "cpu":
        per_epoch = cpu_seconds_per_epoch(history)
        valid = [h["valid_cpu_seconds"] for h in history if h.get("valid_cpu_seconds") is not None]
        per_valid = sum(valid) / len(valid) if valid else None
        if per_epoch is None or per_valid is None:
            per_epoch, per_valid = cost["train_cpu_seconds_per_epoch"], cost["valid_cpu_seconds"]
    seconds, spent, previous = [], 0.0, -1
    for h in history:
        if clock == "cpu":
            train = h.get("train_cpu_seconds")
            spent += per_epoch * (h["epoch"] - previous) if train is None else train
            spent += per_valid if h.get("valid_cpu_seconds") is None else h["valid_cpu_seconds"]
        else:
            spent += h["train_seconds"] + h["valid_seconds"]
        seconds.append(spent)
        previous = h["epoch"]
    return seconds, [h["valid_score"] for h in history]


def plot_anytime(curves, path, dataset, metric):
    """Validation metric against training seconds (log scale), a line per model; unfinished runs dashed.

    ``curves``: ``(model, history, finished, cpu_cost)`` (``cpu_cost``: :func:`measure_cpu_cost`'s, or ``None``).
    The seconds are CPU seconds where every curve has them (recorded for some of its epochs at least, the others
    counted at the run's mean, or measured afterwards), else wall-clock seconds.
    """
    clock = "cpu" if all(_has_cpu_seconds(history, cost) for _, history, _, cost in curves) else "wall"
    estimated = clock == "cpu" and any(
        h.get("train_cpu_seconds") is None or h.get("valid_cpu_seconds") is None for _, history, _, _ in curves
        for h in history)
    fig = new_figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for model, history, done, cost in curves:
        seconds, scores = anytime_curve(history, clock, cost)
        ax.plot(seconds, scores, "-" if done else "--", marker=".", label=model if done else f"{model} (unfinished)")
    ax.set_xscale("log")
    ax.set_xlabel({"wall": "training seconds (wall clock), validations included (log scale)",
                   "cpu": "training CPU seconds, validations included (log scale)"}[clock]
                  + ("\nepochs without a measurement at their run's mean or its cost measured afterwards"
                     if estimated else ""))
    ax.set_ylabel(f"valid {metric.replace('ndcg', 'NDCG').replace('hit', 'HR')}")
    ax.set_title(f"{dataset}: validation quality per unit of compute")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


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
