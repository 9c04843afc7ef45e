"""Trainers for the plugin's models (found by :func:`recbole_dreamrec.utils.get_trainer`), and what every model
run through the plugin gets on top of its RecBole trainer (:func:`instrument`): timings, a non-finite-loss guard
that names the epoch and batch, multi-process training on the CPU, and the checkpoints of
:mod:`recbole_dreamrec.checkpoints` (atomic writes under a name no other run has, exact resume, also from within an
epoch)."""

import os
import time

import torch
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_dreamrec.checkpoints import AtomicCheckpointMixin, ResumableMixin, UniqueCheckpointMixin


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
    ``eval_seconds``), and the CPU seconds of this process in them (``train_epoch_cpu_seconds``,
    ``eval_cpu_seconds``), for any RecBole trainer.

    The CPU seconds (``time.process_time``: every thread of the process, no other process) are the cost of a CPU
    run that does not depend on what else the machine runs: two runs sharing a core take twice the wall-clock time
    each, not twice the CPU time. On a GPU they are not the cost (the device's work is not counted). An epoch
    continued from a checkpoint written by a version that did not record them has ``None``.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.train_epoch_seconds, self.train_epoch_cpu_seconds = [], []
        self.eval_seconds, self.eval_cpu_seconds = [], []

    def _train_epoch(self, *args, **kwargs):
        return _timed(self.train_epoch_seconds, self.train_epoch_cpu_seconds, super()._train_epoch, *args, **kwargs)

    def evaluate(self, *args, **kwargs):
        return _timed(self.eval_seconds, self.eval_cpu_seconds, super().evaluate, *args, **kwargs)


def _timed(seconds, cpu_seconds, function, *args, **kwargs):
    """Call ``function`` and append its wall-clock duration to ``seconds`` and this process's CPU time in it to
    ``cpu_seconds`` (also when it raises)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        return function(*args, **kwargs)
    finally:
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)


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
            self._take_rank0_checkpoint_name()

    def _take_rank0_checkpoint_name(self):
        names = [self.saved_model_file]
        torch.distributed.broadcast_object_list(names, src=0)
        self.saved_model_file = names[0]

    def fit(self, *args, **kwargs):
        result = super().fit(*args, **kwargs)
        if not self.config["single_spec"]:
            self._take_rank0_checkpoint_name()  # rank 0 claims its name on disk at its first write (a suffix, maybe)
        return result


class SafetyMixin:
    """Stop on a non-finite loss with the epoch and batch in the message (the best checkpoint so far is kept: it is
    only written after a validation) and, where one was written, how to resume."""

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        self._epoch, self._batch = epoch_idx, 0
        return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)

    def _check_nan(self, loss):
        self._batch += 1
        if not torch.isfinite(loss).all():
            written = self._checkpoint_name_claimed and os.path.isfile(self.saved_model_file)  # not a namesake's
            kept = self.saved_model_file if written else "none written yet"
            last = getattr(self, "last_model_file", None)
            resume = f" (resume from {last} with --resume_file)" if written and last and os.path.isfile(last) else ""
            raise FloatingPointError(
                f"non-finite training loss ({loss.detach().float().cpu().tolist()}) at epoch {self._epoch}, "
                f"batch {self._batch}; best checkpoint kept: {kept}{resume}. Try a lower learning_rate or "
                "clip_grad_norm."
            )


def instrument(trainer_class):
    """``trainer_class`` with the mixins above and those of :mod:`recbole_dreamrec.checkpoints`."""
    # only rank 0 writes, so only it claims a checkpoint name (UniqueCheckpointMixin); DistributedMixin gives that
    # name to every process after fit
    mixins = (ResumableMixin, TimingMixin, SafetyMixin, AtomicCheckpointMixin, DistributedMixin, UniqueCheckpointMixin)
    return type(trainer_class.__name__, (*mixins, trainer_class), {})
