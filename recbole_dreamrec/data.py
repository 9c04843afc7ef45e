"""Training windows: each user's training sequence as a few windows encoded once, with a loss at many positions.

RecBole's sequential datasets make every prefix of a user's sequence a row of its own (``u, <i1 .. ik> | i(k+1)``),
each re-encoding up to ``MAX_ITEM_LIST_LENGTH`` (L) items for a single target. A causal encoder computes, in one
pass over a row's L items, the encoding of every shorter prefix too: position j sees items 0..j only, so its output
is what the same encoder gives the row's first j + 1 items as a history of their own. :func:`window_rows` chooses
the rows whose windows cover every training target exactly once; :func:`train_loader` iterates them; the model
(``DreamRec.calculate_loss``) takes its loss at the window's last ``window_targets`` positions, position j
predicting item j + 1 of the window and the last position the row's own target.

With a window stride S (``window_stride``) a user with n training rows k = 0 .. n - 1 is trained on

1. the row ``min(n, L) - 1``: all its positions, whose histories are exactly RecBole's rows (every target of a user
   with at most L training rows, and the first L of every other user);
2. the rows ``L - 1 + m S`` (m = 1, 2, ...) below n - 1, and the row n - 1: the positions of the targets since the
   previous chosen row (at most S), whose histories hold the last ``L - S + 1`` to L items where RecBole's rows hold
   L (same items at the end, fewer before them).

So S = L trains on non-overlapping windows (the cheapest; a target's history restarts every L items; a larger S
counts as L) and S = 1 on
RecBole's (history, target) pairs exactly (one window per row after a user's first L). An epoch covers every
training target once, as before.
"""

from logging import getLogger

import numpy as np
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.interaction import Interaction

WINDOW_TARGETS_FIELD = "window_targets"  # how many positions at the end of a row's window take the loss


def window_rows(user_ids, max_len, stride):
    """Which training rows to train on as windows, and how many targets each holds.

    Args:
        user_ids (numpy.ndarray): the user (or session) of each training row ``[N]``; a user's rows in their
            order in the sequence (RecBole's order: by time within a user).
        max_len (int): L, ``MAX_ITEM_LIST_LENGTH``.
        stride (int): S >= 1; S > L counts as L.

    Returns:
        tuple: the chosen rows' indices ``[W]`` (int64, ascending) and their target counts ``[W]`` (they sum to N).
    """
    user_ids = np.asarray(user_ids)
    n_rows = len(user_ids)
    stride = min(stride, max_len)
    if n_rows == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(user_ids, kind="stable")  # a user's rows together, in their order
    sorted_ids = user_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # [U] first row of each user
    counts = np.diff(np.r_[starts, n_rows])  # [U] rows of each user
    k = np.arange(n_rows) - np.repeat(starts, counts)  # each row's index within its user
    n = np.repeat(counts, counts)  # its user's row count
    first = k == np.minimum(n, max_len) - 1
    strided = (k >= max_len - 1 + stride) & ((k - (max_len - 1)) % stride == 0)
    chosen = first | strided | (k == n - 1)
    chosen_k = k[chosen]
    user_start = np.r_[True, np.diff(np.repeat(np.arange(len(counts)), counts)[chosen]) != 0]
    previous = np.r_[-1, chosen_k[:-1]]
    previous[user_start] = -1
    rows = np.sort(order[chosen])
    # counts in the order of `rows`: map back through the sort
    targets = np.empty(n_rows, dtype=np.int64)
    targets[order[chosen]] = chosen_k - previous
    return rows.astype(np.int64), targets[rows]


def window_dataset(dataset, stride):
    """The training ``dataset`` (RecBole's prefix rows) reduced to the rows of :func:`window_rows`, each with its
    target count in :data:`WINDOW_TARGETS_FIELD`."""
    inter = dataset.inter_feat
    rows, targets = window_rows(inter[dataset.uid_field].numpy(), dataset.max_item_list_len, stride)
    rows = torch.from_numpy(rows)
    fields = {field: inter[field][rows] for field in inter.columns}
    fields[WINDOW_TARGETS_FIELD] = torch.from_numpy(targets)
    return dataset.copy(Interaction(fields))


class WindowTrainDataLoader(TrainDataLoader):
    """RecBole's training loader over the windows of :func:`window_dataset`, with batches of about
    ``train_batch_size`` targets (not rows): a window holds several targets, and the loss is their mean, so a step
    sees as many targets as a step of RecBole's rows did and the learning rate keeps its meaning.

    Args:
        config (Config): the run's config (``train_batch_size``, ``seed``, ...).
        dataset (Dataset): the window dataset.
        targets (int): the training targets the windows hold.
        shuffle (bool): shuffle the windows every epoch.
    """

    def __init__(self, config, dataset, targets, shuffle=True):
        self.targets = int(targets)
        super().__init__(config, dataset, None, shuffle=shuffle)

    def _init_batch_size_and_step(self):
        per_window = self.targets / max(1, len(self._dataset))
        windows = max(1, int(round(self.config["train_batch_size"] / per_window)))
        self.step = windows
        self.set_batch_size(windows)


def train_loader(config, train_data):
    """The loader a model trains on: for DreamRec with ``window_stride`` S > 0, the windows of ``train_data``'s rows
    (:class:`WindowTrainDataLoader`); otherwise ``train_data`` itself (RecBole's rows, also for RecBole's models).

    Evaluation keeps RecBole's loaders; the model is built from RecBole's training rows either way (its SVD codes
    come from them), so a checkpoint does not depend on the training path.
    """
    stride = config["window_stride"] if "window_stride" in config else None
    if not stride:
        return train_data
    dataset = window_dataset(train_data._dataset, stride)
    targets = len(train_data._dataset)
    loader = WindowTrainDataLoader(config, dataset, targets, shuffle=config["shuffle"])
    getLogger().info(
        f"training windows (window_stride {stride}): {len(dataset)} windows of up to {dataset.max_item_list_len} "
        f"items hold the {targets} training targets; batches of {loader.step} windows (about "
        f"{config['train_batch_size']} targets)"
    )
    return loader
