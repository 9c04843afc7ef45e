"""The set-up the ml-1m refit explorations share (``history-read/explore_history_read.py``,
``history-read/explore_second_item.py``, ``refit-ridge/explore_ridge.py``): a checkpoint in evaluation mode, its
training data's SVD codes at full rank (the shipped read's table) and random ReLU features of h, drawn as
``wider-codes/explore_code_tables.py`` draws them (R ~ N(0, 1/H), b ~ N(0, 1/4); the scripts divide h by its mean
coordinate spread over the first training batch before R), all from seed 0 in this order; and the one pass over
the training targets they make (``training_batches``: h, the target and the items before it), with the normal
equations of a read of h and weighted sums of those items (``weighted_normal_equations``; ``explore_ridge.py`` and
``explore_recent_items.py``). Both scripts read the same numbers as before they used it, to the digit (checked on
the ml-100k package-defaults checkpoint: the scripts as committed before and after).
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


def lagged(seq, positions, k):
    """The item ``k`` places before each position of ``seq`` (0, the padding id, where the history has none)."""
    return torch.where(positions >= k, seq.gather(1, (positions - k).clamp(min=0)), torch.zeros_like(positions))


def training_batches(checkpoint, model, lags):
    """Per training batch (the windows of ``train_loader``), ``(h [M H], target [M], items)``: every training
    target's h and target, and the items at lags 0 .. lags - 1 before it (``items[k]`` [M]; lag 0: the last item)."""
    from recbole_dreamrec.data import WINDOW_TARGETS_FIELD, train_loader
    from recbole_dreamrec.model.dreamrec import window_positions

    with torch.no_grad():
        for batch in train_loader(checkpoint.config, checkpoint.train_data):
            seq, lengths = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
            positions, counts = window_positions(lengths, batch[WINDOW_TARGETS_FIELD])  # [B C]
            h, target = model.training_targets(batch)  # [M H], [M]
            yield h, target, [lagged(seq, positions, k)[counts] for k in range(lags)]


def weighted_normal_equations(checkpoint, model, dense, n, weightings):
    """One pass over the training targets for reads of [dense(h), x, 1], x = sum_k w_k onehot(item at lag k), one
    per weighting ``w`` of ``weightings`` (lists of lag weights, lag 0 first): the blocks of each read's normal
    equations, summed per item, so no lag-by-lag blocks are kept (memory grows with the weightings, not with K^2).

    Returns ``(gram [E E], sums [n E], blocks)``, ``blocks[j] = (by [n E], pair [n n], cross [n n])`` for weighting j:
    x's rows summed against dense(h) (X^T D), against the targets' one-hot rows (Y^T X) and against themselves (X^T X).
    """
    lags = max(len(w) for w in weightings)
    gram = sums = None
    blocks = None
    for h, target, items in training_batches(checkpoint, model, lags):
        d = dense(h).double()  # [M E]
        if gram is None:
            gram = torch.zeros(d.shape[1], d.shape[1], dtype=torch.float64)
            sums = torch.zeros(n, d.shape[1], dtype=torch.float64)
            blocks = [tuple(torch.zeros(n, s, dtype=torch.float64) for s in (d.shape[1], n, n)) for _ in weightings]
        gram += d.T @ d
        sums.index_add_(0, target, d)
        one = torch.ones(len(target), dtype=torch.float64)
        for weights, (by, pair, cross) in zip(weightings, blocks):
            for k, wk in enumerate(weights):
                if wk == 0:
                    continue
                by.index_add_(0, items[k], d, alpha=wk)
                pair.index_put_((target, items[k]), one * wk, accumulate=True)
                for l, wl in enumerate(weights):
                    if wl != 0:
                        cross.index_put_((items[k], items[l]), one * (wk * wl), accumulate=True)
    return gram, sums, blocks
