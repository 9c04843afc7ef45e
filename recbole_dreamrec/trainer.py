"""Trainers for the plugin's models (found by :func:`recbole_dreamrec.utils.get_trainer`), and the timing
instrumentation every model run through the plugin gets."""

import time

from recbole.trainer import Trainer
from recbole.utils import set_color


class DreamRecTrainer(Trainer):
    """RecBole's trainer, plus the mean item-embedding norm after every epoch (log line and TensorBoard).

    DreamRec's targets are its own trainable item embeddings, so the MSE can also fall by shrinking all of them;
    a steadily falling norm makes that collapse visible.
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
        start = time.perf_counter()
        try:
            return super()._train_epoch(*args, **kwargs)
        finally:
            self.train_epoch_seconds.append(time.perf_counter() - start)

    def evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self.eval_seconds.append(time.perf_counter() - start)


def with_timing(trainer_class):
    """``trainer_class`` with :class:`TimingMixin` mixed in."""
    return type(f"Timed{trainer_class.__name__}", (TimingMixin, trainer_class), {})
