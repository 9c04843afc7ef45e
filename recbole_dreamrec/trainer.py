"""Trainers for the plugin's models (found by :func:`recbole_dreamrec.utils.get_trainer`), and what every model
run through the plugin gets on top of its RecBole trainer (:func:`instrument`): timings, a non-finite-loss guard
that names the epoch and batch, atomic checkpoint writes, exact resume, and multi-process training on the CPU."""

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


def _writes_checkpoints(trainer):
    return trainer.config["single_spec"] or trainer.config["local_rank"] == 0


class SafetyMixin:
    """Stop on a non-finite loss with the epoch and batch in the message (the best checkpoint so far is kept: it is
    only written after a validation), and write checkpoints atomically (a temporary file, then a rename), so an
    interrupted write never leaves a truncated best checkpoint."""

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
        super()._save_checkpoint(epoch, verbose=False, saved_model_file=partial, **kwargs)
        os.replace(partial, target)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {target}")


class ResumableMixin:
    """Keep a "last" checkpoint (``<best checkpoint>.last.pth``) that a later run resumes from to the same state.

    At the start of every epoch after the first, the state after the previous epoch and its validation is written
    (atomically): weights, optimizer, early-stopping state, best validation result, the best checkpoint's path and
    every random state training draws from (torch, numpy, Python, the training dataloader's shuffling generator).
    An interrupted run loses at most the epoch in progress; :meth:`resume` continues exactly where it stopped.
    """

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._resumable = (train_data, saved)
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)

    @property
    def last_model_file(self):
        stem = self.saved_model_file[:-4] if self.saved_model_file.endswith(".pth") else self.saved_model_file
        return f"{stem}.last.pth"

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        loader, saved = getattr(self, "_resumable", (None, False))
        if saved and epoch_idx > self.start_epoch and _writes_checkpoints(self):
            self._save_last_checkpoint(epoch_idx - 1, loader)
        return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)

    def _save_last_checkpoint(self, epoch, train_data):
        state = {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "best_valid_result": self.best_valid_result,
            "best_model_file": self.saved_model_file,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "train_loader": train_data.generator.get_state(),
            },
        }
        partial = f"{self.last_model_file}.partial"
        torch.save(state, partial, pickle_protocol=4)
        os.replace(partial, self.last_model_file)

    def resume(self, last_model_file, train_data):
        """Continue from a last checkpoint: the next ``fit`` starts at the epoch after it, in the same state."""
        checkpoint = torch.load(last_model_file, map_location=self.device, weights_only=False)
        if checkpoint["config"]["model"] != self.config["model"]:
            raise ValueError(
                f"resume_file {last_model_file} holds a {checkpoint['config']['model']} run, not {self.config['model']}"
            )
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint["best_valid_result"]
        self.saved_model_file = checkpoint["best_model_file"]
        rng = checkpoint["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        train_data.generator.set_state(rng["train_loader"])
        self.logger.info(f"Resumed from {last_model_file}: training continues at epoch {self.start_epoch}")


def instrument(trainer_class):
    """``trainer_class`` with the mixins above."""
    mixins = (ResumableMixin, TimingMixin, SafetyMixin, DistributedMixin)
    return type(trainer_class.__name__, (*mixins, trainer_class), {})
