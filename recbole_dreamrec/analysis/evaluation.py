"""Evaluate a trained checkpoint (DreamRec under several samplers, or any RecBole model) and time it."""

import inspect
import time
from collections import ChainMap

import numpy as np
import torch
from recbole.utils import ModelType, get_trainer, init_seed
from torch import nn

from recbole_dreamrec.checks import check_model_file
from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.model.item_init import sequential_interaction_matrix
from recbole_dreamrec.model.samplers import build_sampler
from recbole_dreamrec.model.settings import check_config
from recbole_dreamrec.quick_start import load_data_and_model


def sampler_settings(timesteps, steps=(5, 10, 20, 50, 100), eta=0.0):
    """``ddpm`` with all T steps, then ``ddim`` at each K <= T (as dicts of ``sampler``, ``sampling_steps``,
    ``ddim_eta``)."""
    settings = [{"sampler": "ddpm", "sampling_steps": timesteps, "ddim_eta": 1.0}]
    settings += [{"sampler": "ddim", "sampling_steps": k, "ddim_eta": eta} for k in steps if k <= timesteps]
    return settings


class Rescored(nn.Module):
    """A model with a different ``full_sort_predict``, for a RecBole trainer to evaluate.

    Everything else (``predict``, field names, parameters, ``eval()``) is the wrapped model's; the model object
    itself is not changed. Subclasses define ``full_sort_predict``.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)  # the wrapper's own parameters, buffers and submodules
        except AttributeError:
            if name == "model":  # not set yet
                raise
            return getattr(self.model, name)

    def full_sort_predict(self, interaction):
        raise NotImplementedError


class SeenItemsMasked(Rescored):
    """The model's full-sort scores with every item the user interacted with before the target at ``-inf`` (the
    training split plus the row's own history); see :func:`mask_seen_items`."""

    def __init__(self, model, train_dataset):
        super().__init__(model)
        matrix = sequential_interaction_matrix(train_dataset, model)
        self.seen_in_training = torch.from_numpy(matrix.toarray() > 0)  # [n_users n_items], on the CPU
        self.uid_field = train_dataset.uid_field

    def full_sort_predict(self, interaction):
        scores = self.model.full_sort_predict(interaction)  # [B n_items]
        seen = self.seen_in_training[interaction[self.uid_field].cpu()].to(scores.device)  # [B n_items]
        seen = seen.scatter(1, interaction[self.model.ITEM_SEQ].to(scores.device), True)
        return scores.masked_fill(seen, float("-inf"))


class FixedScores(Rescored):
    """Every row scored by the same ``[n_items]`` vector ``scores`` (set it before evaluating)."""

    scores = None

    def full_sort_predict(self, interaction):
        return self.scores.repeat(len(interaction), 1)


def mask_seen_items(model, train_dataset):
    """``model`` with its full-sort scores of every item the user interacted with before the target set to ``-inf``
    (a :class:`SeenItemsMasked` wrapper; evaluate it in place of the model).

    RecBole does this for general models (``Pop``, ``BPR``, ...) in full-sort evaluation and not for sequential ones,
    so on data without repeated interactions (MovieLens ratings) ``Pop`` gets help that SASRec or DreamRec do not.
    Masking every model alike puts them on one footing.
    """
    return SeenItemsMasked(model, train_dataset)


INFERENCE_KEYS = ("sampler", "sampling_steps", "ddim_eta", "guidance_weight", "generation_samples", "sampling_seed")


def apply_inference_setting(model, config, setting):
    """Set a trained DreamRec's inference: ``setting``'s values (:data:`INFERENCE_KEYS`), the config's for the
    keys it leaves out (``sampling_seed``: the config's ``seed``), checked by the model's own
    :func:`~recbole_dreamrec.model.settings.check_config` as if they were in the config."""
    unknown = sorted(set(setting) - set(INFERENCE_KEYS))
    if unknown:
        raise ConfigError(f"unknown inference setting(s) {unknown}; known: {list(INFERENCE_KEYS)}")
    value = {key: setting.get(key, config["seed" if key == "sampling_seed" else key]) for key in INFERENCE_KEYS}
    check_config(ChainMap({k: v for k, v in value.items() if k != "sampling_seed"}, config))
    model.sampler = build_sampler(value["sampler"], model.diffusion, value["sampling_steps"], value["ddim_eta"])
    model.guidance_weight = float(value["guidance_weight"])
    model.generation_samples = int(value["generation_samples"])
    model.sampling_seed = int(value["sampling_seed"])


SPLITS = ("valid", "test")


def check_split(split):
    """A :class:`ConfigError` unless ``split`` is an evaluation split (:data:`SPLITS`); callers check before loading
    a checkpoint, which takes about a minute on ml-1m."""
    if split not in SPLITS:
        raise ConfigError(f"split must be 'valid' or 'test', not {split!r}")


class Checkpoint:
    """A trained checkpoint loaded once (config, weights, data), to evaluate under several inference settings and on
    several splits: loading rebuilds the dataset, which takes about a minute on ml-1m.

    Same weights, same data and the same seed for every evaluation. Each evaluation starts from the inference the
    checkpoint was saved with: a setting changes only the keys it names, and ``None`` evaluates the model as saved,
    also after other settings.
    """

    def __init__(self, model_file):
        self.model_file = check_model_file(model_file)
        loaded = load_data_and_model(self.model_file)
        self.config, self.model, self.dataset, self.train_data, self.valid_data, self.test_data = loaded
        self._trainers = {}  # by mask_history, or by the id of a rescoring wrapper
        self._as_saved = True

    def save(self, path):
        """Write the checkpoint file again to ``path`` with the model's weights and the config as they are now (e.g.
        after a refit), everything else as loaded."""
        saved = torch.load(self.model_file, map_location="cpu", weights_only=False)
        saved["state_dict"], saved["config"] = self.model.state_dict(), self.config
        torch.save(saved, path)

    def trainer(self, mask_history=False, rescored=None):
        """A RecBole trainer of the model (of its :func:`mask_seen_items` wrapper with ``mask_history``, for a
        sequential model; general models are masked by RecBole already), or of ``rescored``, a :class:`Rescored`
        wrapper of the model (which then decides the scores alone)."""
        if rescored is not None:
            key = ("rescored", id(rescored))
            if key not in self._trainers:
                self._trainers[key] = (self._new_trainer(rescored), rescored)  # the wrapper kept alive with its id
            return self._trainers[key][0]
        mask_history = bool(mask_history) and self.config["MODEL_TYPE"] == ModelType.SEQUENTIAL
        if mask_history not in self._trainers:
            scored = mask_seen_items(self.model, self.train_data.dataset) if mask_history else self.model
            self._trainers[mask_history] = self._new_trainer(scored)
        return self._trainers[mask_history]

    def _new_trainer(self, scored):
        return get_trainer(self.config["MODEL_TYPE"], self.config["model"])(self.config, scored)

    def metrics(self, eval_data, mask_history=False, rescored=None):
        """RecBole's metrics of the model as it is now (or of a :class:`Rescored` wrapper of it, ``rescored``) on a
        loader (``eval_data``), from the config's seed."""
        return self.user_metrics(eval_data, (), mask_history, rescored)[0]

    def user_metrics(self, eval_data, per_user, mask_history=False, rescored=None):
        """:meth:`metrics` and, for the top-k metrics named in ``per_user`` (e.g. ``ndcg@10``), each evaluated
        user's value (:func:`per_user_values`), for paired comparisons of two scorings on the same users.

        Returns:
            tuple: the metrics (dict) and ``{name: numpy array [n_users]}``, users in RecBole's evaluation order.
        """
        init_seed(self.config["seed"], self.config["reproducibility"])
        trainer, collected = self.trainer(mask_history, rescored), {}
        evaluate = trainer.evaluator.evaluate

        def keep(struct):  # RecBole's trainer hands the collected top-k to its evaluator, then drops it
            collected["struct"] = struct
            return evaluate(struct)

        trainer.evaluator.evaluate = keep
        try:
            result = trainer.evaluate(eval_data, load_best_model=False)
        finally:
            del trainer.evaluator.evaluate  # the class's method again
        users = per_user_values(trainer.evaluator, collected["struct"], per_user) if per_user else {}
        return {k: float(v) for k, v in result.items()}, users

    def split_data(self, split):
        """The evaluation loader of ``split`` (``valid`` or ``test``)."""
        check_split(split)
        return self.test_data if split == "test" else self.valid_data

    def evaluate(self, settings=(None,), split="test", mask_history=False, per_user=()):
        """Metrics and evaluation seconds on ``split``, once per setting (see :func:`evaluate_checkpoint`); with
        ``per_user`` (top-k metric names), each row also holds ``per_user``: ``{name: numpy array [n_users]}``, each
        evaluated user's value (:meth:`user_metrics`), for paired comparisons of the settings."""
        eval_data = self.split_data(split)
        rows = []
        for setting in settings:
            if setting is not None or not self._as_saved:
                apply_inference_setting(self.model, self.config, setting or {})  # {}: the config's, as saved
                self._as_saved = not setting
            start = time.perf_counter()
            result, users = self.user_metrics(eval_data, per_user, mask_history)
            seconds = time.perf_counter() - start
            row = {"model": self.config["model"], **(setting or {}), "seconds": seconds, "users": eval_data.sample_size}
            rows.append({**row, "mask_history": bool(mask_history), **result})
            if per_user:
                rows[-1]["per_user"] = users
        return rows


def per_user_values(evaluator, struct, names):
    """Each user's value of the top-k metrics ``names`` (e.g. ``["ndcg@10", "hit@20"]``) from what RecBole's
    collector gathered for ``evaluator`` (a RecBole ``Evaluator``), computed by RecBole's own metric classes: their
    means are the values RecBole reports (before its rounding).

    Returns:
        dict: ``{name: numpy array [n_users]}``.
    """
    values = {}
    for name in names:
        metric, _, k = name.lower().partition("@")
        known = evaluator.metric_class.get(metric)
        if known is None or not k.isdigit() or int(k) not in getattr(known, "topk", ()):
            raise ConfigError(f"{name} is not a top-k metric this evaluation computes")
        pos_index, pos_len = known.used_info(struct)
        needs_len = len(inspect.signature(known.metric_info).parameters) == 2
        per_rank = known.metric_info(pos_index, pos_len) if needs_len else known.metric_info(pos_index)
        values[name] = per_rank[:, int(k) - 1].astype(float)  # [n_users]
    return values


def paired_difference(a, b):
    """The mean of ``a - b`` over the same users and its standard error, ``std(a - b) / sqrt(n)``: the noise of a
    difference between two scorings of the same users, which is smaller than either metric's own binomial error
    when the two rank most users alike.

    Returns:
        tuple[float, float]: the mean difference and its standard error.
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size < 2:
        raise ValueError("a paired difference needs at least two users")
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(diff.size))


def evaluate_checkpoint(model_file, settings=(None,), split="test", mask_history=False):
    """Test (or validation) metrics and evaluation seconds of a checkpoint, once per sampler setting.

    Same weights, same data and the same seed for every setting. To evaluate one checkpoint more than once (several
    splits), load it once: :class:`Checkpoint`.

    Args:
        model_file (str): a checkpoint saved by RecBole's trainer.
        settings (list[dict or None]): DreamRec inference settings, each with any of ``sampler``,
            ``sampling_steps``, ``ddim_eta``, ``guidance_weight``, ``generation_samples`` (oracles averaged per
            history) and ``sampling_seed`` (the seed of the sampler's noise, the config's ``seed`` by default); a
            key left out takes the checkpoint's config value. ``None`` evaluates the model as saved (any model).
        split (str): ``test`` or ``valid``.
        mask_history (bool): for a sequential model, rank only items the user has not interacted with before (see
            :func:`mask_seen_items`); general models are masked by RecBole already.

    Returns:
        list[dict]: one row per setting: the setting, ``seconds``, ``users`` and the metrics.
    """
    return Checkpoint(model_file).evaluate(settings, split, mask_history)


def evaluate_history_subsets(model_file, start_token="start"):
    """Test metrics of a checkpoint on all test rows, on the rows whose history is only ``start_token`` (an empty
    history in the source data, see :mod:`recbole_dreamrec.convert`) and on the other rows.

    The same weights and evaluator for each subset: RecBole's full-sort loader built over the subset's rows (one
    user per row, as the converter writes them). Any model; DreamRec's keyed noise makes a row's oracle the same in
    every subset.

    Returns:
        dict: ``{"all" | "empty" | "nonempty": {"rows": n, metric: value, ...}}``.
    """
    from recbole.data.dataloader import FullSortEvalDataLoader

    checkpoint = Checkpoint(model_file)
    config, dataset, test_data = checkpoint.config, checkpoint.dataset, checkpoint.test_data
    test_dataset = test_data._dataset
    list_field = dataset.iid_field + config["LIST_SUFFIX"]
    start = dataset.token2id(dataset.iid_field, start_token)
    seq = test_dataset.inter_feat[list_field]  # [N L], padded with 0
    empty = (seq[:, 0] == start) & (seq[:, 1:] == 0).all(dim=1)
    results = {}
    for name, mask in (("all", torch.ones_like(empty)), ("empty", empty), ("nonempty", ~empty)):
        subset = test_dataset.copy(test_dataset.inter_feat[mask.nonzero().flatten()])
        loader = FullSortEvalDataLoader(config, subset, test_data._sampler, shuffle=False)
        results[name] = {"rows": int(mask.sum()), **checkpoint.metrics(loader)}
    return results
