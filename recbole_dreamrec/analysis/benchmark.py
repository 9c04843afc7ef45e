"""Side-by-side runs: several models, one dataset, one shared setting, one table.

Each finished model is written at once and atomically to ``<out>/runs/<Model>.json``; a later run skips models
finished there (unless asked to redo them) and runs a failed one again. A model in progress writes
``<out>/runs/<Model>.progress.json`` after every validation (its last checkpoint, the validation curve with the
seconds each epoch took, the wall-clock seconds so far); the same command run again continues it from its last checkpoint (:meth:`ResumableMixin.resume
<recbole_dreamrec.checkpoints.ResumableMixin.resume>`), so an interrupted comparison loses at most the epoch in progress,
and the resumed model ends as an uninterrupted one would. Tables (Markdown, CSV; the unfinished runs in a table of
their own), a bar chart and the anytime plot (:mod:`recbole_dreamrec.analysis.tables`) are rebuilt after every
validation. Paths in the records are written relative to the working directory (RecBole's bundled datasets as
``<recbole>/...``), so the records of a checkout mean the same on another machine.
"""

import copy
import hashlib
import json
import os
import time
from pathlib import Path

import yaml
from recbole.config import Config as RecBoleConfig

from recbole_dreamrec.errors import InputNotFoundError
from recbole_dreamrec.quick_start import run_recbole_dreamrec
from recbole_dreamrec.analysis.tables import (TABLE_METRICS, sum_or_none, cpu_seconds_per_epoch, load_progress,
                                              write_tables)
from recbole_dreamrec.reporting import atomic_write_text, local_path, machine_info, plain, portable
from recbole_dreamrec.utils import properties_path

def model_override_files(config_file_list, model):
    """A model's own overrides of a shared setting, those that exist, in the order they apply: for every setting
    ``<dir>/models/<Model>.yaml`` and, for this one, ``<dir>/models/<setting>/<Model>.yaml`` (``<dir>`` and
    ``<setting>``: the folder and the file name without ``.yaml`` of the first shared setting file, e.g.
    ``configs/models/ml-1m/DreamRec.yaml`` for ``configs/ml-1m.yaml``)."""
    if not config_file_list:
        return []
    first = Path(config_file_list[0])
    candidates = [first.parent / "models" / f"{model}.yaml", first.parent / "models" / first.stem / f"{model}.yaml"]
    return [str(path) for path in candidates if path.is_file()]


def run_model(model, dataset, config_file_list, config_dict, progress=None):
    """Train and test one model; a record of what it scored, what it cost and the exact config it ran with.

    ``progress`` (optional) is passed to :func:`~recbole_dreamrec.quick_start.run_recbole_dreamrec`.
    """
    start = time.perf_counter()
    record = {"model": model, "dataset": dataset, "config_files": list(config_file_list)}
    try:
        result = run_recbole_dreamrec(model, dataset, config_file_list, dict(config_dict), progress=progress)
    except Exception as error:  # one broken model must not end the comparison
        record.update(status="failed", error=f"{type(error).__name__}: {error}")
    else:
        record.update(
            status="ok",
            best_valid={k: float(v) for k, v in result["best_valid_result"].items()},
            test={k: float(v) for k, v in result["test_result"].items()},
            epochs_trained=result["epochs_trained"],
            train_seconds_per_epoch=result["train_seconds_per_epoch"],
            train_cpu_seconds_per_epoch=result.get("train_cpu_seconds_per_epoch"),
            eval_seconds=result["eval_seconds"],
            num_params=result["num_params"],
            model_file=os.path.abspath(result["model_file"]),
            config=plain(result["config"].final_config_dict),
        )
    record.update(wall_seconds=time.perf_counter() - start, machine=machine_info(), finished=time.strftime("%F %T"))
    return portable(record)


def measure_cpu_cost(record, config_dict=None, epochs=1):
    """The CPU seconds of a training epoch and of a validation of a finished run's model, measured anew under the
    run's setting files (``epochs`` epochs, each validated; nothing saved): the load-independent cost of runs
    recorded before CPU seconds were (:class:`~recbole_dreamrec.trainer.TimingMixin`). ``config_dict``: the
    ``--key=value`` settings the run had besides its files (e.g. ``data_path``). The plugin's packaged model
    defaults are held at the run's values (a default changed since, say DreamRec's ``sampling_steps``, would
    change the cost of its validations); those RecBole rewrites into a structure (``train_neg_sample_args``) are
    left to the files."""
    packaged = packaged_settings(record["model"], record["dataset"])
    model_defaults = {**(packaged[2] or {}), **(packaged[3] if len(packaged) > 3 else {})}
    ran_with = record.get("config") or {}
    settings = {k: ran_with[k] for k in model_defaults if k in ran_with and not isinstance(ran_with[k], (dict, list))}
    settings.update(config_dict or {}, epochs=epochs, eval_step=1, show_progress=False)
    result = run_recbole_dreamrec(record["model"], record["dataset"], record["config_files"], settings, saved=False)
    return portable({"train_cpu_seconds_per_epoch": result["train_cpu_seconds_per_epoch"],
                     "valid_cpu_seconds": result["valid_cpu_seconds"], "epochs": epochs,
                     "measured": time.strftime("%F %T"), "machine": machine_info()})


def setting_file_values(config_file_list):
    """The values of setting files, in their order (comments and layout do not count)."""
    return [yaml.safe_load(Path(path).read_text()) or {} for path in config_file_list]


def packaged_settings(model, dataset):
    """The values of the plugin's own setting files that :class:`~recbole_dreamrec.config.Config` loads for this
    model and dataset (``properties/overall.yaml``, ``dataset/<dataset>.yaml``, ``model/<model>.yaml`` and, where
    there is one, ``dataset/<dataset>/<model>.yaml``): the defaults a run gets without naming them, which change
    with the plugin's version."""
    paths = (properties_path("overall.yaml"), properties_path("dataset", f"{dataset}.yaml"),
             properties_path("model", f"{model}.yaml"))
    values = [setting_file_values([path])[0] if path.is_file() else None for path in paths]
    own = properties_path("dataset", dataset, f"{model}.yaml")  # only where there is one: older digests stay valid
    return values + [setting_file_values([own])[0]] if own.is_file() else values


# settings that change how a run is kept, not what it computes: left out of the settings' fingerprint
RESULT_NEUTRAL_KEYS = ("checkpoint_minutes", "checkpoint_dir")

# settings added to a model after runs of it began, each with the value that computes what the runs did without it:
# at that value left out of the fingerprint, so that adding one does not start unfinished runs afresh
ADDED_SETTINGS_AS_BEFORE = {"flush_denormal": False, "train_timesteps": "all"}

# settings that act once training has ended (the validation curve does not depend on them): left out of the
# fingerprint, so that an unfinished run continues under a new value and ends with it
AFTER_TRAINING_KEYS = ("refit_last_step", "refit_features", "refit_code_size", "refit_last_item",
                       "refit_last_item_ridge", "refit_last_item_lags", "refit_last_item_decay")


# where compare() keeps checkpoints unless told otherwise (checkpoint_dir): outside any checkout, so that a long run
# continues after the working tree is laid anew (RecBole's own default, saved/, lies inside it)
DEFAULT_CHECKPOINT_DIR = os.path.join("~", ".recbole_dreamrec", "saved")


def default_checkpoint_dir():
    """``$RECBOLE_DREAMREC_CHECKPOINTS``, else :data:`DEFAULT_CHECKPOINT_DIR`, in this home folder."""
    return os.path.expanduser(os.environ.get("RECBOLE_DREAMREC_CHECKPOINTS") or DEFAULT_CHECKPOINT_DIR)


def with_checkpoint_dir(config_dict, config_file_list):
    """``config_dict`` with a ``checkpoint_dir``: its own (``~`` expanded: RecBole does not), else, where no setting
    file names one, :func:`default_checkpoint_dir`."""
    settings = dict(config_dict or {})
    if settings.get("checkpoint_dir"):
        settings["checkpoint_dir"] = os.path.expanduser(str(settings["checkpoint_dir"]))
    elif not any(isinstance(v, dict) and "checkpoint_dir" in v for v in setting_file_values(config_file_list)):
        settings["checkpoint_dir"] = default_checkpoint_dir()
    return settings


def _without_neutral(values):
    """A setting file's (or ``config_dict``'s) values without :data:`RESULT_NEUTRAL_KEYS`."""
    if not isinstance(values, dict):
        return values
    return {k: v for k, v in values.items() if k not in RESULT_NEUTRAL_KEYS}


def command_line_values(config_dict):
    """``config_dict`` with its strings read as RecBole's ``Config`` reads them (``'2021'`` is the int 2021, ``'true'``
    True, ``'[10, 20]'`` a list; anything else stays a string): the values a run computes with, however given."""
    return RecBoleConfig._convert_config_dict(None, dict(config_dict or {}))  # RecBole's own reading; no state used


def effective_settings(model, dataset, config_file_list, config_dict, as_given=False):
    """The values a run gets from the plugin's packaged defaults (:func:`packaged_settings`), then its setting files
    in their order, then its ``--key=value`` settings (read as RecBole reads them: :func:`command_line_values`;
    ``as_given``: the strings themselves), each later one winning (nested dicts merged key by key), without
    :data:`RESULT_NEUTRAL_KEYS`: what the run computes from, whichever file a value comes from."""
    config_dict = dict(config_dict or {}) if as_given else command_line_values(config_dict)
    merged = {}
    for values in [*packaged_settings(model, dataset), *setting_file_values(config_file_list), config_dict]:
        if isinstance(values, dict):
            _merge_into(merged, _without_neutral(values))
    return merged


def _merge_into(merged, values):
    """``merged`` updated with ``values``, a nested dict merged into a nested dict key by key."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            _merge_into(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)


def settings_fingerprint(model, dataset, config_file_list, config_dict):
    """A digest of the settings a run comes from (:func:`effective_settings`: the plugin's packaged defaults for the
    model and dataset, overridden by the setting files in their order, then by the ``--key=value`` settings): an
    unfinished run is continued only under the same one. Values count, not where they come from, so a comment or
    the layout of a file can change while a model is unfinished, and so can a packaged default that the run sets
    itself (a new data set default that an ablation variant already names); a changed default the run does take
    (say DreamRec's ``sampling_steps``) starts it afresh instead of mixing two settings in one validation curve.
    Settings that do not change what a run computes (:data:`RESULT_NEUTRAL_KEYS`: how often it writes checkpoints)
    do not count, nor do settings that act after training (:data:`AFTER_TRAINING_KEYS`), nor a setting added later
    at the value that computes as before (:data:`ADDED_SETTINGS_AS_BEFORE`)."""
    return _values_digest([model, dataset, training_settings(model, dataset, config_file_list, config_dict)])


def training_settings(model, dataset, config_file_list, config_dict):
    """The values a run's training computes from, as :func:`settings_fingerprint` counts them (without the
    settings that act after training, and without a setting added later at the value that computes as before), as
    plain values. A finished record keeps them (``training_settings``, paths as :func:`portable` writes them), so that
    a later call can name what changed (:func:`training_changes`)."""
    settings = effective_settings(model, dataset, config_file_list, config_dict)
    return plain({k: v for k, v in settings.items() if k not in AFTER_TRAINING_KEYS
                  and (k not in ADDED_SETTINGS_AS_BEFORE or ADDED_SETTINGS_AS_BEFORE[k] != v)})


def training_changes(record, settings):
    """``{key: (the finished run's value, today's value)}`` for each of ``settings`` (:func:`training_settings`)
    that differs from the ``training_settings`` a finished ``record`` keeps (a key one side lacks counts, as
    ``None``). Empty for a failed run, and for a record made before records kept them (2026-12-04): a run's full
    config is not comparable with the setting files' values (RecBole rewrites some, e.g. ``data_path``)."""
    ran = record.get("training_settings")
    if record.get("status") != "ok" or ran is None:
        return {}
    return setting_changes(ran, portable(settings))  # paths as records keep them: relative to the checkout, ~/...


def setting_changes(before, now):
    """``{key: (before's value, now's value)}`` for each key whose value differs between two settings dicts (a key
    one side lacks counts, as ``None``), by key."""
    return {key: (before.get(key), now.get(key)) for key in sorted({*before, *now}) if before.get(key) != now.get(key)}


def describe_changes(changes):
    """``key: before -> now`` for each of ``changes`` (:func:`training_changes`), comma separated."""
    return ", ".join(f"{key}: {json.dumps(before)} -> {json.dumps(now)}" for key, (before, now) in changes.items())


def _values_digest(values):
    """16 hex digits of the SHA-256 of ``values`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def legacy_settings_fingerprints(model, dataset, config_file_list, config_dict):
    """The digests progress files held before today's :func:`settings_fingerprint`: before 2026-12-03 the merged
    settings with the ``--key=value`` strings as given (``'2021'`` and 2021 were two runs); before 2026-12-02 each
    source's values in a list (the ``--key=value`` settings, the setting files, the packaged defaults), before
    2026-11-29 the same without the packaged defaults, and before that the files' bytes. Accepted so that a run
    started then continues; rewritten as :func:`settings_fingerprint` at its next validation."""
    files = [_without_neutral(v) for v in setting_file_values(config_file_list)]
    packaged = [_without_neutral(v) for v in packaged_settings(model, dataset)]
    config_dict = _without_neutral(config_dict or {})
    digest = hashlib.sha256(json.dumps([model, dataset, plain(config_dict)], sort_keys=True).encode())
    for path in config_file_list:
        digest.update(Path(path).read_bytes())
    as_given = effective_settings(model, dataset, config_file_list, config_dict, as_given=True)
    return (_values_digest([model, dataset, plain(as_given)]),
            _values_digest([model, dataset, plain(config_dict), plain(files), plain(packaged)]),
            _values_digest([model, dataset, plain(config_dict), plain(files)]), digest.hexdigest()[:16])


def duration(seconds):
    """``seconds`` as a short human-readable duration: ``45s``, ``12m05s``, ``3h07m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """One model's run inside :func:`compare`: its ``<Model>.progress.json`` and its progress lines.

    Called by the trainer after every validation (``progress(trainer, epoch_idx, valid_score)``): appends the
    epoch to the validation curve (``history``: epoch, training and validation seconds, the validation score),
    writes the progress file atomically, and logs a line with the epoch, the best score, the elapsed wall-clock time
    and the time left: at least until early stopping if the score does not improve again, at most until the epoch
    budget. A resumed run first drops the epochs its last checkpoint does not hold (an epoch whose validation was
    recorded just before the interruption is trained again).
    """

    def __init__(self, path, model, fingerprint, log, before=None, on_write=None):
        self.path, self.model, self.fingerprint, self.log = Path(path), model, fingerprint, log
        self.on_write = on_write  # called after every write (compare rebuilds the folder's tables)
        before = before or {}
        self.history = list(before.get("history", []))
        self.wall_before = before.get("wall_seconds", 0.0)  # earlier sessions of this run
        self.sessions = before.get("sessions", 0) + 1
        self.last_model_file = before.get("last_model_file")
        self.epoch_budget = before.get("epoch_budget")  # the trainer's (RecBole trains memory-based models once)
        self.valid_metric = before.get("valid_metric")
        self.start = time.perf_counter()
        self._seen_train = self._seen_eval = 0  # the trainer's timings already in the history
        self._first_call = True

    load = staticmethod(load_progress)

    @property
    def wall_seconds(self):
        return self.wall_before + time.perf_counter() - self.start

    def __call__(self, trainer, epoch_idx, valid_score):
        if self._first_call:
            self._first_call = False
            self.history = [h for h in self.history if h["epoch"] < trainer.start_epoch]
        train, valid = slice(self._seen_train, None), slice(self._seen_eval, None)
        self._seen_train, self._seen_eval = len(trainer.train_epoch_seconds), len(trainer.eval_seconds)
        self.history.append({"epoch": epoch_idx, "train_seconds": sum(trainer.train_epoch_seconds[train]),
                             "valid_seconds": sum(trainer.eval_seconds[valid]),
                             "train_cpu_seconds": sum_or_none(trainer.train_epoch_cpu_seconds[train]),
                             "valid_cpu_seconds": sum_or_none(trainer.eval_cpu_seconds[valid]),
                             "valid_score": float(valid_score)})
        self.checkpointed(trainer)
        if self.on_write is not None:
            self.on_write()
        self.log(self.line(trainer, epoch_idx))

    def checkpointed(self, trainer):
        """Write the progress file with the trainer's last checkpoint and the time spent so far: after every
        validation, and called by the trainer after each checkpoint written within an epoch (a run interrupted
        before its first validation then continues from it too)."""
        self.last_model_file, self.epoch_budget = trainer.last_model_file, trainer.epochs
        self.valid_metric = str(trainer.config["valid_metric"]).lower()
        self.write()

    def write(self):
        state = {"model": self.model, "fingerprint": self.fingerprint, "last_model_file": self.last_model_file,
                 "wall_seconds": self.wall_seconds, "sessions": self.sessions, "epoch_budget": self.epoch_budget,
                 "valid_metric": self.valid_metric, "written": time.strftime("%Y-%m-%d_%H-%M-%S"),
                 "history": self.history}
        atomic_write_text(self.path, json.dumps(portable(state), indent=1))

    def line(self, trainer, epoch_idx):
        per_epoch = sum(h["train_seconds"] + h["valid_seconds"] for h in self.history) / (epoch_idx + 1)
        patience_left = max(0, trainer.stopping_step + 1 - trainer.cur_step) * max(1, trainer.eval_step)
        budget_left = trainer.epochs - epoch_idx - 1
        metric = trainer.config["valid_metric"].lower()
        return (
            f"{self.model}: epoch {epoch_idx + 1}/{trainer.epochs}, valid {metric} {self.history[-1]['valid_score']:.4f}"
            f" (best {trainer.best_valid_score:.4f}, {trainer.cur_step} without gain), {per_epoch:.0f}s/epoch, "
            f"elapsed {duration(self.wall_seconds)}, left {duration(min(patience_left, budget_left) * per_epoch)}"
            f" (no further gain) to {duration(budget_left * per_epoch)} (epoch budget)"
        )

    def finish(self, record):
        """Fold the run's whole history (every session) into its record."""
        record.update(wall_seconds=self.wall_before + record["wall_seconds"], sessions=self.sessions)
        if record["status"] == "ok" and self.history:
            record.update(
                history=self.history,
                epochs_trained=self.history[-1]["epoch"] + 1,
                epoch_budget=self.epoch_budget,
                train_seconds=sum(h["train_seconds"] for h in self.history),
                valid_seconds=sum(h["valid_seconds"] for h in self.history),
                train_cpu_seconds=sum_or_none(h.get("train_cpu_seconds") for h in self.history),
                valid_cpu_seconds=sum_or_none(h.get("valid_cpu_seconds") for h in self.history),
                train_cpu_seconds_per_epoch=cpu_seconds_per_epoch(self.history),
                stopped_early=self.history[-1]["epoch"] + 1 < self.epoch_budget,
            )
            record["train_seconds_per_epoch"] = record["train_seconds"] / record["epochs_trained"]  # eval_step > 1 too
        return record


def compare(models, dataset, config_file_list, out_dir, config_dict=None, redo=(), log=print, metrics=TABLE_METRICS):
    """Run ``models`` one after another (skipping finished ones) and rebuild the tables after each.

    Args:
        models (list[str]): model names.
        dataset (str): dataset name.
        config_file_list (list[str]): the shared setting; a model's own overrides are added after it where they
            exist (:func:`model_override_files`).
        out_dir (str): where ``runs/``, ``configs/`` and the tables go.
        config_dict (dict, optional): settings for every model (e.g. ``epochs`` for a smoke run).
        redo (iterable[str]): models to run again although finished (``"all"`` for every model): the finished
            record moves to ``runs/replaced/`` and the model starts afresh; an interrupted redo, like any
            unfinished run, continues from its last checkpoint when the same call runs again.
        metrics (iterable[str]): the test metrics in the tables (the first two are also drawn).

    Checkpoints go to ``config_dict['checkpoint_dir']`` or, where neither it nor a setting file names one, to
    :func:`default_checkpoint_dir` (outside the checkout): the progress files under ``out_dir`` (which a checkout
    keeps) point there, so an unfinished run continues in a fresh checkout on the same machine.

    Returns:
        list[dict]: the records of ``models``, in order.
    """
    missing = [f for f in config_file_list if not Path(f).is_file()]
    if missing:
        raise InputNotFoundError(f"config file {missing[0]!r} not found")
    out_dir = Path(out_dir)
    redo = set(models) if "all" in redo else set(redo)
    records, start = [], time.perf_counter()
    for n, model in enumerate(models, start=1):
        run_file = out_dir / "runs" / f"{model}.json"
        files = list(config_file_list) + model_override_files(config_file_list, model)
        afresh = False
        before = json.loads(run_file.read_text()) if run_file.is_file() else None
        if before is not None and before["status"] != "ok" and model not in redo:
            # a failed run (missing data, a bad setting) runs again once its cause is fixed
            log(f"[{n}/{len(models)}] {model}: failed before ({before.get('error', '')}): running again")
        elif before is not None:
            if model not in redo:
                record = before
                changed = training_changes(record, training_settings(model, dataset, files, config_dict))
                if changed:  # kept, not run again: a long run is not discarded for a setting changed by mistake
                    log(f"[{n}/{len(models)}] {model}: finished before under other training settings "
                        f"({describe_changes(changed)}); its record stays in the tables (--redo {model} runs it "
                        f"again under today's)")
                after = after_training_settings(model, dataset, files, config_dict)
                changes = after_training_changes(record, after)
                if changes:
                    log(f"[{n}/{len(models)}] {model}: finished before under other settings that act after training "
                        f"({changes}): finishing its best checkpoint again")
                    record = refinish_run(run_file, after, log)
                    atomic_write_text(out_dir / "configs" / f"{model}.yaml", yaml.safe_dump(record["config"], sort_keys=True))
                else:
                    log(f"[{n}/{len(models)}] {model}: finished before, skipped ({run_file})")
                records.append(record)
                continue
            replaced = replace_finished_run(run_file)
            log(f"[{n}/{len(models)}] {model}: running again; the finished record is kept as {replaced}")
            afresh = True  # from the start, not from a progress file left behind
        progress = start_progress(out_dir, model, dataset, files, config_dict, afresh, log)
        progress.on_write = lambda: write_tables(with_other_runs(records, out_dir), out_dir, dataset, metrics)
        settings = with_checkpoint_dir(config_dict, files)
        if progress.last_model_file:
            settings["resume_file"] = local_path(progress.last_model_file)
            log(f"[{n}/{len(models)}] {model}: continuing from {progress.last_model_file} "
                f"({len(progress.history)} epochs validated, {duration(progress.wall_before)} so far)")
        log(f"[{n}/{len(models)}] {model}: running with {files} (elapsed {duration(time.perf_counter() - start)})")
        try:
            record = progress.finish(run_model(model, dataset, files, settings, progress=progress))
            record["training_settings"] = portable(training_settings(model, dataset, files, config_dict))
        except KeyboardInterrupt:
            log(f"[{n}/{len(models)}] {model}: interrupted; the same command continues it from its last checkpoint")
            raise
        if record["status"] == "ok":
            atomic_write_text(out_dir / "configs" / f"{model}.yaml", yaml.safe_dump(record["config"], sort_keys=True))
        atomic_write_text(run_file, json.dumps(record, indent=1))
        progress.path.unlink(missing_ok=True)
        log(f"[{n}/{len(models)}] {model}: {record['status']} in {record['wall_seconds']:.0f}s")
        records.append(record)
        write_tables(with_other_runs(records, out_dir), out_dir, dataset, metrics)
    write_tables(with_other_runs(records, out_dir), out_dir, dataset, metrics)
    return records


def after_training_settings(model, dataset, config_file_list, config_dict):
    """Today's values of the settings that act after training (:data:`AFTER_TRAINING_KEYS`) for this run, those
    that the model has (:func:`effective_settings`: its packaged defaults, the setting files, ``config_dict``)."""
    wanted = effective_settings(model, dataset, config_file_list, config_dict)
    return {key: wanted[key] for key in AFTER_TRAINING_KEYS if key in wanted}


def after_training_changes(record, settings):
    """Those of ``settings`` (:func:`after_training_settings`) whose value differs from the finished run's
    ``record``, ``{key: today's value}``; an unset value, False and 0 all mean off. Empty for a failed run."""
    if record.get("status") != "ok":
        return {}
    ran = record.get("config") or {}
    return {key: value for key, value in settings.items() if (value or None) != (ran.get(key) or None)}


def refinish_run(run_file, settings, log=print):
    """A finished run brought to today's settings that act after training (``settings``, see
    :func:`after_training_settings`; the record notes those that changed, :func:`after_training_changes`) without
    training again: its best checkpoint reloaded, finished under them
    (``model.finish_training`` over its training data: DreamRec's refit, which recomputes the whole read from the
    encoder and the codes, so an already refit checkpoint refits as the trained one would), saved as a new
    checkpoint beside it, validated and tested as the run would have been. The record (``run_file``) then holds
    those numbers, the new checkpoint and ``refinished`` (when, the settings, the checkpoint before); the one before
    moves to ``runs/replaced/``. A run whose model does not finish training under the new settings (a refit cannot
    be undone) keeps its record: run it again with ``--redo``; so does a run whose checkpoint is not on this machine
    (a record made elsewhere), so that a comparison of several models goes on. Every one of ``settings`` is set in
    the checkpoint's config, not only those that changed: that config may be older than some of them (a run
    continued across sessions keeps the config its best checkpoint was saved with)."""
    from recbole_dreamrec.analysis.evaluation import Checkpoint  # loads RecBole's trainers: only when needed
    from recbole_dreamrec.data import train_loader

    record = json.loads(Path(run_file).read_text())
    changes, start = after_training_changes(record, settings), time.perf_counter()
    if not Path(local_path(record["model_file"])).is_file():
        log(f"{record['model']}: {changes} would finish it again, but its checkpoint {record['model_file']} is not on "
            f"this machine; its record stays as it was (--redo {record['model']} runs it again)")
        return record
    checkpoint = Checkpoint(local_path(record["model_file"]))
    config, model = checkpoint.config, checkpoint.model
    for key, value in settings.items():
        config[key] = value
    model.check_config(config)
    model.set_after_training(config)
    if not model.finishes_training:
        log(f"{record['model']}: {changes} leaves the trained weights as they were, but {record['model_file']} was "
            f"finished after training already; its record stays (--redo {record['model']} runs it again)")
        return record
    model.finish_training(train_loader(config, checkpoint.train_data))
    model_file = Path(checkpoint.model_file)
    model_file = model_file.with_name(f"{model_file.stem}-refinished-{time.strftime('%Y%m%d-%H%M%S')}.pth")
    checkpoint.save(model_file)
    valid, test = checkpoint.metrics(checkpoint.valid_data), checkpoint.metrics(checkpoint.test_data)
    replace_finished_run(run_file)
    record.update(best_valid=valid, test=test, model_file=str(model_file), config=plain(config.final_config_dict),
                  refinished={"at": time.strftime("%F %T"), "settings": changes, "seconds": time.perf_counter() - start,
                              "model_file_before": record["model_file"], "finished_before": record.get("finished")},
                  finished=time.strftime("%F %T"))
    record = portable(record)
    atomic_write_text(Path(run_file), json.dumps(record, indent=1))
    log(f"{record['model']}: finished again under {changes}: valid {valid}, test {test} ({model_file})")
    return record


def replace_finished_run(run_file):
    """Move a finished run's record ``runs/<Model>.json`` to ``runs/replaced/<Model>-<finished>.json`` (where no
    reader of finished runs looks) and return the new path: a redo is then an unfinished run like any other, which
    the same command continues after an interruption."""
    run_file = Path(run_file)
    finished = json.loads(run_file.read_text()).get("finished") or time.strftime("%F %T")
    target = run_file.parent / "replaced" / f"{run_file.stem}-{finished.replace(' ', '_').replace(':', '-')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run_file, target)
    return target


def finished_run_files(out_dir, pattern="*"):
    """The records of finished runs in ``out_dir/runs`` whose name (without ``.json``) matches ``pattern``, by
    name: ``<Model>.json``, not an unfinished run's ``<Model>.progress.json``."""
    return [p for p in sorted(Path(out_dir, "runs").glob(f"{pattern}.json")) if not p.name.endswith(".progress.json")]


def with_other_runs(records, out_dir):
    """``records`` and the other finished runs in ``out_dir/runs``, in the order they finished (then by model
    name): the tables show every model of the folder, also when several comparisons share it (e.g. two commands
    running side by side), in one order whichever of them writes the tables."""
    named = {r["model"] for r in records}
    others = [json.loads(p.read_text()) for p in finished_run_files(out_dir) if p.stem not in named]
    return sorted([*records, *others], key=lambda r: (r.get("finished", ""), r["model"]))


def start_progress(out_dir, model, dataset, files, config_dict, redo, log, name=None):
    """The :class:`Progress` of ``model``'s run (``runs/<name>.progress.json``, ``name`` the model's by default):
    continuing an unfinished one under the same settings (its last checkpoint still there), else a new one. An
    unfinished run that is not continued (a redo, other settings, or its last checkpoint gone, e.g. on a new
    machine) keeps its validation curve: its progress file moves to ``runs/replaced/``
    (:func:`set_aside_unfinished_run`) before the new run writes its own."""
    name = name or model
    path = Path(out_dir) / "runs" / f"{name}.progress.json"
    fingerprint = settings_fingerprint(model, dataset, files, config_dict)
    before = Progress.load(path)
    if before is not None:
        last = before.get("last_model_file")
        same = (fingerprint, *legacy_settings_fingerprints(model, dataset, files, config_dict))
        why = None
        if redo:
            why = "running again (redo)"
        elif before.get("fingerprint") not in same:
            why = f"the settings changed since the unfinished run in {path}"
        elif not last or not Path(local_path(last)).is_file():
            why = f"the last checkpoint of the unfinished run ({last}) is gone"
        if why is not None:
            kept = set_aside_unfinished_run(path)
            log(f"{name}: {why}; starting afresh (its {len(before.get('history', []))} validated epochs are kept "
                f"in {kept})")
            before = None
    return Progress(path, name, fingerprint, log, before)


def set_aside_unfinished_run(progress_file):
    """Move an unfinished run's ``runs/<Model>.progress.json`` to ``runs/replaced/<Model>-unfinished-<time>.progress
    .json`` (where no reader of runs looks; ``<time>`` is when it was last written: as the file says, else its
    modification time, which a fresh checkout sets to the checkout's) and return the new path."""
    progress_file = Path(progress_file)
    written = (Progress.load(progress_file) or {}).get("written") or time.strftime(
        "%Y-%m-%d_%H-%M-%S", time.localtime(progress_file.stat().st_mtime))
    model = progress_file.name[: -len(".progress.json")]
    target = progress_file.parent / "replaced" / f"{model}-unfinished-{written}.progress.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(progress_file, target)
    return target
