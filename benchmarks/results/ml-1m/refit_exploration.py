"""The set-up the ml-1m refit explorations share (``history-read/explore_history_read.py``,
``history-read/explore_second_item.py``, ``refit-ridge/explore_ridge.py``): a checkpoint in evaluation mode, its
training data's SVD codes at full rank (the shipped read's table) and random ReLU features of h, drawn as
``wider-codes/explore_code_tables.py`` draws them (R ~ N(0, 1/H), b ~ N(0, 1/4); the scripts divide h by its mean
coordinate spread over the first training batch before R), all from seed 0 in this order.
"""
import torch

from recbole_dreamrec.analysis.evaluation import Checkpoint
from recbole_dreamrec.model.item_init import sequential_interaction_matrix


def load(model_file, F):
    """``(checkpoint, model, H, n_items, codes [n n] float64, R [H F], b [F])``."""
    torch.manual_seed(0)
    checkpoint = Checkpoint(model_file)
    model = checkpoint.model.eval()
    H, n = model.hidden_size, model.n_items
    matrix = sequential_interaction_matrix(checkpoint.train_data.dataset, model)
    codes = model._svd_item_codes(matrix, n).double()  # [n N]
    return checkpoint, model, H, n, codes, torch.randn(H, F) / H ** 0.5, torch.randn(F) * 0.5
