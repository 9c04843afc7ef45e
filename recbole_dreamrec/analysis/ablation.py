"""Ablations: named variants of one model (settings on top of one shared setting), each trained with several seeds.

A variants file is YAML mapping a variant's name to its settings (``model`` may name another model than DreamRec)::

    defaults: {}
    lr-0.001: {learning_rate: 0.001}

Each (variant, seed) run is written at once to ``<out>/runs/<variant>__seed<seed>.json`` and skipped when run again
(with one line naming any setting that differs from today's: the record stays; a failed run runs again); a run in
progress keeps ``runs/<variant>__seed<seed>.progress.json`` (its last checkpoint, outside the checkout by default,
and its validation curve), so an interrupted ablation continues where it stopped, as ``compare.py`` does.
``results.md``/``results.csv`` list every run; ``summary.md``/``summary.csv`` the mean over seeds per variant, with
the binomial standard error of the test hit rate so that ties are visible.
Selection is on the validation columns only; the test columns are reported, never used to choose.
"""

import json
import math
import time
from pathlib import Path

import yaml

from recbole_dreamrec.analysis.benchmark import (describe_changes, model_override_files, run_model, setting_changes,
                                                 start_progress, training_changes, training_settings,
                                                 with_checkpoint_dir)
from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.reporting import atomic_write_text, local_path, portable, write_table


def load_variants(path, only=None):
    """``{name: settings}`` from a variants file, in file order; ``only`` (names) keeps those, in that order."""
    variants = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(variants, dict) or not all(isinstance(v or {}, dict) for v in variants.values()):
        raise ConfigError(f"{path}: expected a mapping of variant names to settings")
    variants = {str(name): dict(settings or {}) for name, settings in variants.items()}
    if only:
        unknown = [name for name in only if name not in variants]
        if unknown:
            raise ConfigError(f"{path}: no variant(s) {unknown}; variants are {list(variants)}")
        variants = {name: variants[name] for name in only}
    return variants


def run_file(out_dir, variant, seed):
    return Path(out_dir) / "runs" / f"{variant}__seed{seed}.json"


def run_ablation(variants, seeds, dataset, config_file_list, out_dir, metrics, config_dict=None, test_rows=None,
                 log=print):
    """Run every variant with every seed (skipping finished runs; a failed one runs again) and rebuild the tables
    after each run.

    Args:
        variants (dict): ``{name: settings}`` (see :func:`load_variants`).
        seeds (list[int]): the seeds (``seed`` drives initialisation, training order and sampling noise).
        dataset (str): dataset name.
        config_file_list (list[str]): the shared setting; the model's own overrides of it apply after it, as in
            :func:`~recbole_dreamrec.analysis.benchmark.compare` (:func:`model_override_files`).
        out_dir (str): where ``runs/`` and the tables go.
        metrics (list[str]): test metrics for the tables (e.g. ``hit@20``), the first one is the headline.
        config_dict (dict, optional): settings applied to every run (under the variant's own).
        test_rows (int, optional): the number of test rows, for the standard error in the summary.

    Returns:
        list[dict]: the records, one per run.
    """
    records, start = [], time.perf_counter()
    total, n = len(variants) * len(seeds), 0
    for name, settings in variants.items():
        for seed in seeds:
            n += 1
            path = run_file(out_dir, name, seed)
            if path.is_file():
                record = json.loads(path.read_text())
                if record["status"] == "ok":
                    log(f"[{n}/{total}] {name} seed {seed}: finished before, skipped ({path})")
                    changed = _changes_since(record, settings, seed, dataset, config_file_list, config_dict)
                    if changed:  # kept, not run again: a long run is not discarded for a setting changed by mistake
                        log(f"[{n}/{total}] {name} seed {seed}: that run's settings differ from today's "
                            f"({describe_changes(changed)}); its record stays in the tables (delete {path}, or "
                            f"give the variant a new name, to run it under today's)")
                    records.append(record)
                    continue
                # a failed run (missing data, a bad setting) is run again once its cause is fixed
                log(f"[{n}/{total}] {name} seed {seed}: failed before ({record.get('error', '')}): running again")
            model, files, settings_run = _run_setting(settings, seed, config_file_list, config_dict)
            progress = start_progress(out_dir, model, dataset, files, settings_run, False, log, name=path.stem)
            if progress.last_model_file:
                settings_run["resume_file"] = local_path(progress.last_model_file)
                log(f"[{n}/{total}] {name} seed {seed}: continuing from {progress.last_model_file} "
                    f"({len(progress.history)} epochs validated)")
            log(f"[{n}/{total}] {name} seed {seed}: {settings} (elapsed {time.perf_counter() - start:.0f}s)")
            record = progress.finish(run_model(model, dataset, files, settings_run, progress=progress))
            record.update(variant=name, seed=seed, settings=settings,
                          training_settings=portable(training_settings(model, dataset, files, settings_run)))
            record["valid_metric"] = str((record.get("config") or {}).get("valid_metric", "")).lower() or None
            record.pop("config", None)  # model_file stays (already relative): readouts re-evaluate the checkpoint
            atomic_write_text(path, json.dumps(record, indent=1))
            progress.path.unlink(missing_ok=True)
            status = record["status"] if record["status"] != "ok" else f"test {metrics[0]} {record['test'][metrics[0]]:.4f}"
            log(f"[{n}/{total}] {name} seed {seed}: {status} in {record['wall_seconds']:.0f}s")
            records.append(record)
            write_ablation_tables(finished_runs(out_dir), out_dir, dataset, metrics, test_rows)
    write_ablation_tables(finished_runs(out_dir), out_dir, dataset, metrics, test_rows)
    return records


def _run_setting(settings, seed, config_file_list, config_dict):
    """The model, setting files and settings of one (variant, seed) run."""
    model = {**(config_dict or {}), **settings}.get("model", "DreamRec")  # a variant's, else everyone's
    # the model's own overrides of the shared setting, as compare.py applies them: a variant varies the setting the
    # model's row in the comparison ran in
    files = list(config_file_list) + model_override_files(config_file_list, model)
    settings_run = with_checkpoint_dir({**(config_dict or {}), **settings, "seed": seed}, files)
    settings_run.pop("model", None)
    return model, files, settings_run


def _changes_since(record, settings, seed, dataset, config_file_list, config_dict):
    """What differs between a finished run's settings and today's (:func:`training_changes`); for a record made
    before records kept them, the variant's own settings against the variants file's."""
    if "training_settings" not in record:
        return setting_changes(record.get("settings", {}), settings)
    model, files, settings_run = _run_setting(settings, seed, config_file_list, config_dict)
    return training_changes(record, training_settings(model, dataset, files, settings_run))


def finished_runs(out_dir):
    """Every run recorded in ``<out_dir>/runs/`` (also those of other variants files or concurrent ablations), not
    the progress files of unfinished ones."""
    paths = sorted((Path(out_dir) / "runs").glob("*__seed*.json"))
    return [json.loads(path.read_text()) for path in paths if not path.name.endswith(".progress.json")]


def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def binomial_se(p, n):
    """The binomial standard error of a hit rate ``p`` over ``n`` test rows."""
    return math.sqrt(p * (1.0 - p) / n) if n else float("nan")


def write_ablation_tables(records, out_dir, dataset, metrics, test_rows=None):
    """``results.{md,csv}`` (every run) and ``summary.{md,csv}`` (mean over seeds per variant) in ``out_dir``."""
    out_dir = Path(out_dir)
    ok = [r for r in records if r["status"] == "ok"]
    valid_metric = next((r["valid_metric"] for r in ok if r.get("valid_metric")), None) or metrics[0]
    header = ["variant", "seed", "status", "epochs", "s/epoch", f"valid {valid_metric}"] + [f"test {m}" for m in metrics]
    rows = []
    for r in records:
        if r["status"] != "ok":
            rows.append([r["variant"], r["seed"], "failed: " + r["error"][:80]] + [""] * (len(header) - 3))
            continue
        rows.append([r["variant"], r["seed"], "ok", r["epochs_trained"], f"{r['train_seconds_per_epoch']:.1f}",
                     f"{r['best_valid'].get(valid_metric, float('nan')):.4f}"]
                    + [f"{r['test'].get(m, float('nan')):.4f}" for m in metrics])
    machines = sorted({r["machine"]["device"] for r in records})
    write_table(out_dir / "results.md", out_dir / "results.csv", header, rows,
                before=[f"# {dataset}: ablation, every run (best validation epoch's test metrics)", ""],
                after=["", f"Machine: {', '.join(machines)}. Raw records: `runs/`."])

    by_variant = {}
    for r in ok:
        by_variant.setdefault(r["variant"], []).append(r)
    header = ["variant", "seeds", f"valid {valid_metric} (mean)"] + [f"test {m} (mean)" for m in metrics]
    header += ["per-seed test " + metrics[0], "settings"]
    rows = []
    for name, runs in by_variant.items():
        rows.append([name, len(runs), f"{_mean([r['best_valid'][valid_metric] for r in runs]):.4f}"]
                    + [f"{_mean([r['test'][m] for r in runs]):.4f}" for m in metrics]
                    + [" ".join(f"{r['test'][metrics[0]]:.4f}" for r in runs),
                       json.dumps(runs[0]["settings"], sort_keys=True)])
    notes = ["", f"Machine: {', '.join(machines)}. Means over seeds; choose on the valid column only."]
    hit = next((m for m in metrics if m.startswith("hit@")), None)
    if hit and test_rows:
        p = _mean([r["test"][hit] for r in ok])
        notes.append(f"Binomial standard error of test {hit} at {p:.4f} over {test_rows} rows: "
                     f"{binomial_se(p, test_rows):.4f}; gaps under about two of these are ties.")
    write_table(out_dir / "summary.md", out_dir / "summary.csv", header, rows,
                before=[f"# {dataset}: ablation summary", ""], after=notes)


READOUTS = (
    {"name": "ddpm (all T steps)", "sampler": "ddpm", "sampling_steps": 1, "ddim_eta": 1.0},
    {"name": "ddim K=20", "sampler": "ddim", "sampling_steps": 20, "ddim_eta": 0.0},
    {"name": "ddim K=5", "sampler": "ddim", "sampling_steps": 5, "ddim_eta": 0.0},
    {"name": "ddim K=1 (one x0 prediction)", "sampler": "ddim", "sampling_steps": 1, "ddim_eta": 0.0},
    {"name": "ddim K=20, mean of 4", "sampler": "ddim", "sampling_steps": 20, "ddim_eta": 0.0, "generation_samples": 4},
)


def evaluate_readouts(out_dir, variant, metrics, readouts=READOUTS, log=print):
    """Evaluate the best checkpoint of every seed of ``variant`` under each readout (sampler, steps, averaging), on
    the validation and the test split: the same weights, only the generation differs. Writes
    ``readouts-<variant>.{md,csv}`` and returns the rows."""
    from recbole_dreamrec.analysis.evaluation import Checkpoint  # loads RecBole's quick start: only when used

    runs = [r for r in finished_runs(out_dir) if r["variant"] == variant]
    rows = []
    for record in runs:
        if record["status"] != "ok":
            continue
        settings = [{k: v for k, v in r.items() if k != "name"} for r in readouts]
        checkpoint = Checkpoint(record["model_file"])
        results = {split: checkpoint.evaluate(settings, split) for split in ("valid", "test")}
        for readout, valid, test in zip(readouts, results["valid"], results["test"]):
            rows.append([readout["name"], record["seed"], f"{valid[record['valid_metric']]:.4f}"]
                        + [f"{test[m]:.4f}" for m in metrics] + [f"{test['seconds']:.1f}"])
            log(f"{variant} seed {record['seed']}: {rows[-1]}")
    valid_metric = next((r["valid_metric"] for r in runs), "valid")
    header = ["readout", "seed", f"valid {valid_metric}"] + [f"test {m}" for m in metrics] + ["test eval s"]
    write_table(Path(out_dir) / f"readouts-{variant}.md", Path(out_dir) / f"readouts-{variant}.csv", header, rows,
                before=[f"# Readouts of the `{variant}` checkpoints (same weights, only the generation differs)", ""],
                after=["", "Choose on the valid column. Evaluation seconds are wall-clock on a shared machine."])
    return rows
