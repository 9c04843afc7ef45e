"""Trainers for the plugin's models (found by :func:`recbole_dreamrec.utils.get_trainer`), and what every model
run through the plugin gets on top of its RecBole trainer (:func:`instrument`): timings, a non-finite-loss guard
that names the epoch and batch, atomic checkpoint writes under a name no other run has, exact resume, and
multi-process training on the CPU."""

import copy
import os
import random
import time

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import set_color


class DreamRecTrainer(Trainer):
    """RecBole's trainer, plus the mean item-embedding norm after every epoch (log line and TensorBoard).

    With ``detach_target: False`` (the paper's code) DreamRec's targets are its own trainable item embeddings, so the
    MSE can also fall by shrinking all of them; a steadily falling norm makes that collapse visible.
    """

    def _generate_train_loss_output(self, epoch_idx, s_time, e_time, losses):
        output = super()._generate_train_loss_output(epoch_idx, s_time, e_time, losses)
        norm = self.model.mean_item_embedding_norm()
        return output + ", " + set_color("item emb norm", "blue") + f": {norm:.4f}"

    def _add_train_loss_to_tensorboard(self, epoch_idx, losses, tag="Loss/Train"):
        super()._add_train_loss_to_tensorboard(epoch_idx, losses, tag)
        self.tensorboard.add_scalar("Train/item_embedding_norm", self.model.mean_item_embedding_norm(), epoch_idx)


class TimingMixin:
    """Records the wall-clock seconds of every training epoch and every evaluation (``train_epoch_seconds``,
    ``eval_seconds``), for any RecBole trainer."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.train_epoch_seconds = []
        self.eval_seconds = []

    def _train_epoch(self, *args, **kwargs):
        return _timed(self.train_epoch_seconds, super()._train_epoch, *args, **kwargs)

    def evaluate(self, *args, **kwargs):
        return _timed(self.eval_seconds, super().evaluate, *args, **kwargs)


def _timed(seconds, function, *args, **kwargs):
    """Call ``function`` and append its wall-clock duration to ``seconds`` (also when it raises)."""
    start = time.perf_counter()
    try:
        return function(*args, **kwargs)
    finally:
        seconds.append(time.perf_counter() - start)


class DistributedMixin:
    """Two fixes to RecBole's multi-process training.

    RecBole wraps the model in ``DistributedDataParallel(device_ids=[local_rank])``, which only works for CUDA
    modules; on the CPU (gloo) the wrapper is built without device ids. And every process names the best checkpoint
    from its own clock, so a process whose name differs from rank 0's (the only writer) finds no checkpoint to test;
    all processes take rank 0's name.
    """

    def __init__(self, config, model):
        cpu_distributed = not config["single_spec"] and config["device"].type == "cpu"
        if cpu_distributed:
            config["single_spec"] = True  # the base class would build the CUDA-only wrapper
        try:
            super().__init__(config, model)
        finally:
            if cpu_distributed:
                config["single_spec"] = False
        if cpu_distributed:
            self.distributed_model = torch.nn.parallel.DistributedDataParallel(self.model)
        if not config["single_spec"]:
            names = [self.saved_model_file]
            torch.distributed.broadcast_object_list(names, src=0)
            self.saved_model_file = names[0]


class UniqueCheckpointMixin:
    """A best-checkpoint name no other run has taken.

    RecBole names the best checkpoint ``<model>-<local time, to the second>.pth``. Two runs of one model that start
    within the same second in one ``checkpoint_dir`` (the seeds of an ablation or a sweep on a fast machine) got the
    same name, and the later run silently wrote its weights over the earlier run's checkpoint, whose record then
    pointed at the wrong model. A name that a checkpoint (best, last or partly written) on disk or a trainer built
    earlier in this process already has gets a suffix: ``<model>-<time>-2.pth``, ``-3``, ... Runs started by
    separate processes in the same second, before either has written anything, can still meet.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.saved_model_file = _unique_checkpoint_name(self.saved_model_file)


_CHECKPOINT_NAMES_GIVEN = set()


def _checkpoint_stem(path):
    """A checkpoint's path without ``.pth``: ``<stem>.pth`` is the best checkpoint, ``<stem>.last.pth`` the last."""
    return path[:-4] if path.endswith(".pth") else path


def _unique_checkpoint_name(path):
    stem = _checkpoint_stem(path)

    def taken(candidate):
        files = (f"{candidate}.pth", f"{candidate}.pth.partial", f"{candidate}.last.pth")
        return candidate in _CHECKPOINT_NAMES_GIVEN or any(os.path.exists(file) for file in files)

    candidate, number = stem, 1
    while taken(candidate):
        number += 1
        candidate = f"{stem}-{number}"
    _CHECKPOINT_NAMES_GIVEN.add(candidate)
    return f"{candidate}.pth"


def _writes_checkpoints(trainer):
    return trainer.config["single_spec"] or trainer.config["local_rank"] == 0


def _single_process_config(config):
    """The config a checkpoint stores: a multi-process run's settings, made to reload in one process.

    RecBole's ``load_data_and_model`` builds the dataloaders from the stored config, and a multi-process config
    makes them ask for a process group that a later single process does not have.
    """
    if config["single_spec"]:
        return config
    stored = copy.copy(config)
    stored.final_config_dict = {**config.final_config_dict, "single_spec": True, "local_rank": 0}
    return stored


class SafetyMixin:
    """Stop on a non-finite loss with the epoch and batch in the message (the best checkpoint so far is kept: it is
    only written after a validation), and write checkpoints atomically (a temporary file, then a rename), so an
    interrupted write never leaves a truncated best checkpoint. A multi-process run's checkpoint stores its config
    as a single process's, so that it reloads (``load_data_and_model``) and evaluates in one process."""

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        self._epoch, self._batch = epoch_idx, 0
        return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)

    def _check_nan(self, loss):
        self._batch += 1
        if not torch.isfinite(loss).all():
            kept = self.saved_model_file if os.path.isfile(self.saved_model_file) else "none written yet"
            last = getattr(self, "last_model_file", None)
            resume = f" (resume from {last} with --resume_file)" if last and os.path.isfile(last) else ""
            raise FloatingPointError(
                f"non-finite training loss ({loss.detach().float().cpu().tolist()}) at epoch {self._epoch}, "
                f"batch {self._batch}; best checkpoint kept: {kept}{resume}. Try a lower learning_rate or "
                "clip_grad_norm."
            )

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not _writes_checkpoints(self):
            return
        target = kwargs.pop("saved_model_file", self.saved_model_file)
        partial = f"{target}.partial"
        config, self.config = self.config, _single_process_config(self.config)
        try:
            super()._save_checkpoint(epoch, verbose=False, saved_model_file=partial, **kwargs)
        finally:
            self.config = config
        os.replace(partial, target)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {target}")


def rng_state(train_data):
    """Every random state training draws from, in this process: torch (CPU and, once CUDA is in use, every CUDA
    device), numpy, Python and the training dataloader's shuffling generator.

    CUDA states are read only where CUDA has started: reading them would start it (a context on every visible GPU)
    in a CPU run, whose CUDA generators draw nothing."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "train_loader": train_data.generator.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state, train_data, logger):
    """Restore what :func:`rng_state` captured (CPU tensors, as ``torch.set_rng_state`` needs)."""
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    train_data.generator.set_state(state["train_loader"].cpu())
    cuda = state.get("cuda")
    if cuda is None:
        return
    if torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    else:
        logger.warning(
            f"the resume file holds the random states of {len(cuda)} CUDA device(s), this process sees "
            f"{torch.cuda.device_count() if torch.cuda.is_available() else 0}: CUDA random streams start afresh"
        )


def _rank_and_world_size(config):
    if config["single_spec"] or not torch.distributed.is_initialized():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


class ResumableMixin:
    """Keep a "last" checkpoint (``<best checkpoint>.last.pth``) that a later run resumes from to the same state.

    After every epoch and its validation (written just before the next epoch starts, and after the last epoch,
    also when early stopping ends training), the state is written atomically: weights, optimizer, early-stopping
    state, best validation result, the best checkpoint's path and every random state training draws from
    (:func:`rng_state`). In a multi-process run every process has its own random streams: the states of all
    processes are gathered into the one file (``rng``, indexed by global rank) and each process restores its own.
    An interrupted run loses at most the epoch in progress; :meth:`resume` continues exactly where it stopped. A run
    that stopped early, or one whose ``epochs`` are all done (unless ``epochs`` is raised), resumes as finished: no
    further training, and the best checkpoint stays the one it had.
    """

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._resumable = (train_data, saved)
        self._epoch_done = None
        # resumed with nothing left to train: RecBole's fit would write the current weights over the best checkpoint
        finished = getattr(self, "_resumed", False) and self.start_epoch >= self.epochs
        result = super().fit(train_data, valid_data, verbose, saved and not finished, show_progress, callback_fn)
        if saved and self._epoch_done is not None:
            self._save_last_checkpoint(self._epoch_done, train_data, stopped_early=self._epoch_done + 1 < self.epochs)
        return result

    @property
    def last_model_file(self):
        return f"{_checkpoint_stem(self.saved_model_file)}.last.pth"

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        _, saved = getattr(self, "_resumable", (None, False))
        if saved and getattr(self, "_epoch_done", None) is not None:
            self._save_last_checkpoint(self._epoch_done, train_data)  # the previous epoch, with its validation
        loss = super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
        self._epoch_done = epoch_idx
        return loss

    def _save_last_checkpoint(self, epoch, train_data, stopped_early=False):
        """Write the last checkpoint; every process calls this (the random states of all are gathered)."""
        _, world_size = _rank_and_world_size(self.config)
        states = [rng_state(train_data)]
        if world_size > 1:
            states = [None] * world_size
            torch.distributed.all_gather_object(states, rng_state(train_data))
        if not _writes_checkpoints(self):
            return
        state = {
            "config": _single_process_config(self.config),
            "epoch": epoch,
            "stopped_early": stopped_early,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "best_valid_result": self.best_valid_result,
            "best_model_file": self.saved_model_file,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "rng": states,
        }
        partial = f"{self.last_model_file}.partial"
        torch.save(state, partial, pickle_protocol=4)
        os.replace(partial, self.last_model_file)

    def resume(self, last_model_file, train_data):
        """Continue from a last checkpoint: the next ``fit`` starts at the epoch after it, in the same state."""
        # on the CPU: random states must be CPU tensors; weights and optimizer state move to their parameters' device
        checkpoint = torch.load(last_model_file, map_location="cpu", weights_only=False)
        if checkpoint["config"]["model"] != self.config["model"]:
            raise ValueError(
                f"resume_file {last_model_file} holds a {checkpoint['config']['model']} run, not {self.config['model']}"
            )
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.start_epoch = self.epochs if checkpoint.get("stopped_early") else checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint["best_valid_result"]
        self.saved_model_file = checkpoint["best_model_file"]
        self._resumed = True
        states = checkpoint["rng"]
        states = [states] if isinstance(states, dict) else states  # files from before per-process states
        rank, world_size = _rank_and_world_size(self.config)
        if len(states) == world_size:
            set_rng_state(states[rank], train_data, self.logger)
        elif self.start_epoch < self.epochs:
            self.logger.warning(
                f"resume_file {last_model_file} was written by a run of {len(states)} process(es), this one has "
                f"{world_size}: random streams start afresh, so training will not match an uninterrupted run"
            )
        if self.start_epoch >= self.epochs:
            self.logger.info(f"Resumed from {last_model_file}: training had finished; nothing left to train")
        else:
            self.logger.info(f"Resumed from {last_model_file}: training continues at epoch {self.start_epoch}")


def instrument(trainer_class):
    """``trainer_class`` with the mixins above."""
    # UniqueCheckpointMixin after DistributedMixin: rank 0's unique name is the one broadcast to every process
    mixins = (ResumableMixin, TimingMixin, SafetyMixin, DistributedMixin, UniqueCheckpointMixin)
    return type(trainer_class.__name__, (*mixins, trainer_class), {})
