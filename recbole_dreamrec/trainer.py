"""Trainers for the plugin's models (found by :func:`recbole_dreamrec.utils.get_trainer`)."""

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
