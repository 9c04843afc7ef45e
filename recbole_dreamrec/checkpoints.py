"""Checkpoints of every model run through the plugin: a best-checkpoint name no other run has taken, atomic writes,
and exact resume from a last checkpoint (also from within an epoch) with every random state training draws from.

The mixins are composed onto RecBole's trainers by :func:`recbole_dreamrec.trainer.instrument`.
"""

import copy
import os
import random
import time

import numpy as np
import torch
from recbole.utils import set_color

from recbole_dreamrec.errors import ConfigError


class UniqueCheckpointMixin:
    """A best-checkpoint name no other run has taken.

    RecBole names the best checkpoint ``<model>-<local time, to the second>.pth``. Two runs of one model that start
    within the same second in one ``checkpoint_dir`` (the seeds of an ablation on a fast machine, or two
    ``compare.py`` commands side by side) got the same name, and the later run silently wrote its weights over the
    earlier run's checkpoint, whose record then pointed at the wrong model. So a process claims the name on disk
    before it first writes a checkpoint (best or last): an empty ``<name>.pth.partial`` created exclusively, which
    only one process can do (the write then replaces it). A name whose checkpoint (best or last) is there, or whose
    claim another run made, gets the next suffix: ``<model>-<time>-2.pth``, ``-3``, ... A trainer that never writes
    (evaluation) leaves nothing behind; a resumed run keeps the name of its checkpoints.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self._checkpoint_name_claimed = False

    def _claim_checkpoint_name(self):
        """Claim ``saved_model_file`` on disk (or the next free name) once, before this trainer's first write."""
        if not self._checkpoint_name_claimed:
            self.saved_model_file = _claim_checkpoint_name(self.saved_model_file)
            self._checkpoint_name_claimed = True


def _checkpoint_stem(path):
    """A checkpoint's path without ``.pth``: ``<stem>.pth`` is the best checkpoint, ``<stem>.last.pth`` the last."""
    return path[:-4] if path.endswith(".pth") else path


def _claim_checkpoint_name(path):
    """``path`` (a best checkpoint's name) or the next free ``-2``, ``-3``, ... name, claimed for this process by
    creating ``<name>.pth.partial`` exclusively (``O_EXCL``: of two processes one succeeds)."""
    stem = _checkpoint_stem(path)
    candidate, number = stem, 1
    while True:
        if not any(os.path.exists(f"{candidate}{end}") for end in (".pth", ".last.pth")):
            try:
                with open(f"{candidate}.pth.partial", "x"):
                    return f"{candidate}.pth"
            except FileExistsError:
                pass
        number += 1
        candidate = f"{stem}-{number}"


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


class AtomicCheckpointMixin:
    """Write checkpoints atomically (a temporary file, then a rename), so an interrupted write never leaves a
    truncated best checkpoint, under the name :class:`UniqueCheckpointMixin` claimed; only the process that writes
    (rank 0) writes. A multi-process run's checkpoint stores its config as a single process's, so that it reloads
    (``load_data_and_model``) and evaluates in one process."""

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not _writes_checkpoints(self):
            return
        if "saved_model_file" not in kwargs:
            self._claim_checkpoint_name()
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
    Within an epoch the last checkpoint is also written every ``checkpoint_minutes`` of training (see
    :class:`_EpochCheckpoints`), so an interrupted run loses at most that much, not the epoch in progress;
    :meth:`resume` continues exactly where it stopped, between two batches as well. A run that stopped early, or
    one whose ``epochs`` are all done (unless ``epochs`` is raised), resumes as finished: no further training, and
    the best checkpoint stays the one it had.

    ``on_checkpoint`` (optional, called with no argument after each checkpoint written within an epoch) lets the
    caller record the time spent so far (:class:`~recbole_dreamrec.analysis.benchmark.Progress`).
    """

    on_checkpoint = None

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

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, *args, **kwargs):
        _, saved = getattr(self, "_resumable", (None, False))
        if saved and getattr(self, "_epoch_done", None) is not None:
            self._save_last_checkpoint(self._epoch_done, train_data)  # the previous epoch, with its validation
        partial, self._partial = getattr(self, "_partial", None), None
        interval = self._checkpoint_seconds() if saved else 0
        if partial is None and not interval:
            loss = super()._train_epoch(train_data, epoch_idx, loss_func, *args, **kwargs)
        else:
            self._epoch_checkpoints = epoch = _EpochCheckpoints(self, train_data, epoch_idx, interval, partial)
            try:
                loss = super()._train_epoch(epoch, epoch_idx, loss_func, *args, **kwargs)
            finally:
                self._epoch_checkpoints = None
            loss = epoch.epoch_loss(loss)
            self.train_epoch_seconds[-1] += epoch.seconds_before
            before = epoch.cpu_seconds_before
            self.train_epoch_cpu_seconds[-1] = None if before is None else self.train_epoch_cpu_seconds[-1] + before
        self._epoch_done = epoch_idx
        return loss

    def _check_nan(self, loss):  # RecBole calls it with every batch's loss
        super()._check_nan(loss)
        if getattr(self, "_epoch_checkpoints", None) is not None:
            self._epoch_checkpoints.add(loss)

    def _checkpoint_seconds(self):
        """Seconds between checkpoints within an epoch; 0 where they are off, or cannot resume exactly: several
        processes (they would have to agree on the moment) or a mixed-precision gradient scaler (RecBole keeps its
        state inside the epoch)."""
        minutes = self.config["checkpoint_minutes"] or 0
        if not minutes:
            return 0
        reason = (
            "a multi-process run" if not self.config["single_spec"] else
            "mixed-precision training (its gradient scaler lives inside RecBole's epoch)" if self.enable_scaler else
            None
        )
        if reason is not None:
            if not getattr(self, "_told_no_checkpoints", False):
                self._told_no_checkpoints = True
                self.logger.info(f"checkpoint_minutes: the last checkpoint is written after each epoch only ({reason})")
            return 0
        return 60.0 * minutes

    def _save_last_checkpoint(self, epoch, train_data, stopped_early=False, partial=None):
        """Write the last checkpoint; every process calls this (the random states of all are gathered).

        ``partial`` (within an epoch, one process): where the epoch in progress stands (:class:`_EpochCheckpoints`);
        ``epoch`` is then the last finished epoch and the random states (``rng``) those at the start of the epoch
        in progress."""
        _, world_size = _rank_and_world_size(self.config)
        states = [rng_state(train_data) if partial is None else partial["epoch_rng"]]
        if world_size > 1:
            states = [None] * world_size
            torch.distributed.all_gather_object(states, rng_state(train_data))
        if not _writes_checkpoints(self):
            return
        self._claim_checkpoint_name()  # the last checkpoint's name follows the best one's
        state = {
            "config": _single_process_config(self.config),
            "epoch": epoch,
            "partial_epoch": None if partial is None else {k: v for k, v in partial.items() if k != "epoch_rng"},
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
        partial = checkpoint.get("partial_epoch")
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint["best_valid_result"]
        self.saved_model_file = checkpoint["best_model_file"]
        self._checkpoint_name_claimed = True  # the resumed run's own name (its files are there)
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
        self._partial = None
        if partial is not None and self.start_epoch < self.epochs:
            if world_size == 1 and len(states) == 1:
                # the epoch in progress continues after the batches it had trained (its random states at its start)
                self._partial = {**partial, "epoch_rng": states[0]}
            else:
                self.logger.warning(f"resume_file {last_model_file} stopped within epoch {self.start_epoch}, which "
                                    f"{world_size} processes cannot continue: it is trained again from its start")
        if self.start_epoch >= self.epochs:
            self.logger.info(f"Resumed from {last_model_file}: training had finished; nothing left to train")
        elif self._partial is not None:
            self.logger.info(f"Resumed from {last_model_file}: training continues at epoch {self.start_epoch}, "
                             f"batch {self._partial['batches'] + 1} of {self._partial['of_batches']}")
        else:
            self.logger.info(f"Resumed from {last_model_file}: training continues at epoch {self.start_epoch}")


class _EpochCheckpoints:
    """One epoch's training data as RecBole's batch loop sees it, writing the last checkpoint between two batches
    every ``interval`` seconds, and (resumed from such a checkpoint) continuing the epoch where it stopped.

    Between batch b and batch b + 1 (after b's optimizer step, before b + 1 is drawn) the checkpoint holds the
    weights and optimizer state, the random states at the start of the epoch and now, b, and the sum of the epoch's
    losses so far. A resumed epoch restores the random states of its start, draws the same batches (the loader's
    order and any sampling in collation come from those states) and leaves the first b untrained, then restores
    the states of the moment after b: batch b + 1 onwards is what the uninterrupted run trained, and the epoch's
    loss is summed in the same order. Saving draws nothing, so the checkpoints leave training unchanged.

    A trainer whose epoch runs RecBole's batch loop more than once (a second pass over the data) gets checkpoints
    in the first pass only; one that does not iterate the training data batch by batch gets none.
    """

    def __init__(self, trainer, loader, epoch_idx, interval, partial=None):
        if partial is not None and partial["epoch"] != epoch_idx:
            raise ValueError(f"resumed within epoch {partial['epoch']}, but training continues at epoch {epoch_idx}")
        self.trainer, self.loader, self.epoch_idx, self.interval, self.partial = (
            trainer, loader, epoch_idx, interval, partial)
        self.total_loss = None if partial is None else partial["loss"]
        self.seconds_before = 0.0 if partial is None else partial["seconds"]
        self.cpu_seconds_before = 0.0 if partial is None else partial.get("cpu_seconds")  # None: not recorded
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        self.passes = 0  # times RecBole's loop started iterating this epoch's data

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):  # shuffle, sampler, ...: the loader's
        return getattr(self.loader, name)

    def add(self, loss):
        """Sum one batch's loss (the total, as RecBole sums a single loss) in the first pass."""
        if self.passes == 1:
            value = loss.item()
            self.total_loss = value if self.total_loss is None else self.total_loss + value

    def epoch_loss(self, returned):
        """The epoch's loss to report: RecBole's own, or, for an epoch resumed within, the sum over every batch."""
        if self.partial is None:
            return returned
        if self.passes == 1 and not isinstance(returned, tuple):
            return self.total_loss
        self.trainer.logger.info(f"epoch {self.epoch_idx}: the training loss shown covers the batches trained after "
                                 "the resume only")
        return returned

    def __iter__(self):
        self.passes += 1
        if self.passes > 1:  # a second pass over the data in the same epoch: no skipping, no checkpoints
            yield from self.loader
            return
        trainer, partial = self.trainer, self.partial
        epoch_rng = rng_state(self.loader) if partial is None else partial["epoch_rng"]
        if partial is not None:
            set_rng_state(epoch_rng, self.loader, trainer.logger)
            if len(self.loader) != partial["of_batches"]:
                raise ConfigError(
                    f"the last checkpoint stopped within an epoch of {partial['of_batches']} batches, but the "
                    f"training data now has {len(self.loader)}: resume with the data and train_batch_size it had"
                )
        batches, done = iter(self.loader), 0
        if partial is not None:
            for done in range(1, partial["batches"] + 1):
                next(batches)  # trained before the interruption
            set_rng_state(partial["rng"], self.loader, trainer.logger)
            trainer._batch = done  # SafetyMixin's count, for its messages
        last_saved = time.perf_counter()
        for batch in batches:
            yield batch
            done += 1  # batch `done` is trained: its optimizer step is made
            if self.interval and done < len(self.loader) and time.perf_counter() - last_saved >= self.interval:
                self._save(done, epoch_rng)
                last_saved = time.perf_counter()

    def _save(self, done, epoch_rng):
        trainer = self.trainer
        trainer._save_last_checkpoint(self.epoch_idx - 1, self.loader, partial={
            "epoch": self.epoch_idx,
            "batches": done,
            "of_batches": len(self.loader),
            "loss": self.total_loss,
            "seconds": self.seconds_before + time.perf_counter() - self.start,
            "cpu_seconds": (None if self.cpu_seconds_before is None
                            else self.cpu_seconds_before + time.process_time() - self.cpu_start),
            "rng": rng_state(self.loader),
            "epoch_rng": epoch_rng,
        })
        if trainer.on_checkpoint is not None:
            trainer.on_checkpoint()
