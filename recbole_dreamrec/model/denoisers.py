"""Denoisers f(x_t, h, t) -> x0 for DreamRec, and the diffusion-step embedding they share.

Each denoiser sees ``concat(x_t, h, step_embedding(t))`` (DreamRec Sec. 4.2) and predicts x_0. ``x_t`` and x_0 live
in the item-code space (``code_size`` D dimensions), ``h`` and the step embedding in the encoder's (``hidden_size``
H); in the paper D = H. Register new ones in :data:`DENOISERS`; the model looks them up by the ``denoiser_type``
config key.
"""

import math

import torch
from torch import nn


class SinusoidalStepEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of the integer diffusion step: ``[B] -> [B dim]``."""

    def __init__(self, dim):
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"step embedding size must be even and >= 4, got {dim}")
        half = dim // 2
        frequencies = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / (half - 1))
        self.register_buffer("frequencies", frequencies.float(), persistent=False)

    def forward(self, t):
        angles = t.float()[:, None] * self.frequencies[None, :]  # [B dim/2]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)  # [B dim]


class StepEmbedding(nn.Sequential):
    """Sinusoidal step embedding followed by ``Linear(H, 2H) - GELU - Linear(2H, H)``.

    A batch holds at most T distinct steps (one, in sampling), so the network runs once per distinct step and its
    rows are spread to the batch: ``[B] -> [B H]`` at the cost of ``[min(B, T)]``.
    """

    def __init__(self, hidden_size):
        super().__init__(
            SinusoidalStepEmbedding(hidden_size),
            nn.Linear(hidden_size, hidden_size * 2),
            nn.GELU(),
            nn.Linear(hidden_size * 2, hidden_size),
        )

    def forward(self, t):
        steps, inverse = torch.unique(t, return_inverse=True)  # [U], [B]
        return super().forward(steps)[inverse]  # [B H]


class _ConcatDenoiser(nn.Module):
    """Base: embed the step, concatenate ``[x_t, h, t_emb]`` and map ``[B D+2H] -> [B D]`` with ``self.net``.

    Args:
        hidden_size (int): H, the size of ``h`` and of the step embedding.
        code_size (int, optional): D, the size of ``x_t`` and x_0; defaults to H (the paper).
    """

    def __init__(self, hidden_size, code_size=None):
        super().__init__()
        self.hidden_size = hidden_size
        self.code_size = hidden_size if code_size is None else code_size
        self.in_size = self.code_size + 2 * hidden_size
        self.step_embedding = StepEmbedding(hidden_size)
        self.feature_read = None  # a RandomFeatureRead where refit_features > 0

    def forward(self, x_t, h, t):
        t_emb = self.step_embedding(t)  # [B H]
        x_0 = self.net(torch.cat([x_t, h, t_emb], dim=-1))  # [B D]
        if self.feature_read is not None and self.feature_read.fitted:
            x_0 = x_0 + self.feature_read(h)  # [B D]
        return x_0


class MLP1Denoiser(_ConcatDenoiser):
    """The paper's denoiser: one linear layer on ``[x_t, h, t_emb]``."""

    def __init__(self, hidden_size, code_size=None):
        super().__init__(hidden_size, code_size)
        self.net = nn.Linear(self.in_size, self.code_size)


class MLP2Denoiser(_ConcatDenoiser):
    """Two layers: ``Linear(D+2H, 2D) - GELU - Linear(2D, D)``."""

    def __init__(self, hidden_size, code_size=None):
        super().__init__(hidden_size, code_size)
        self.net = nn.Sequential(
            nn.Linear(self.in_size, self.code_size * 2),
            nn.GELU(),
            nn.Linear(self.code_size * 2, self.code_size),
        )


class _FittedAfterTraining(nn.Module):
    """Base of the reads that the refit fits after training: buffers, zero and off until then. A checkpoint saved
    without them (trained before they were set: a run continued, or refit afterwards) loads with them unfitted, as
    training leaves them."""

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if not any(key.startswith(prefix) for key in state_dict):
            state_dict.update({prefix + name: b.clone() for name, b in self._buffers.items() if b is not None})
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class RandomFeatureRead(_FittedAfterTraining):
    r"""A read of h through F random ReLU features, :math:`\phi(h) W` with :math:`\phi(h) = \max(0, h P + o)`
    (Rahimi & Recht 2007: a ridge fit on them approximates a kernel ridge read of h), added to a denoiser's output
    (``refit_features``). P ``[H F]``, o ``[F]`` and W ``[F D]`` are buffers, not trained: zero, and the read off,
    until ``refit_last_step`` draws P and o and fits W with the rest of the last step's read
    (:func:`~recbole_dreamrec.model.refit.refit_last_step`); training is the same with or without it.

    Args:
        hidden_size (int): H, the size of h.
        code_size (int): D, the size of x_0.
        num_features (int): F.
    """

    def __init__(self, hidden_size, code_size, num_features):
        super().__init__()
        self.register_buffer("projection", torch.zeros(hidden_size, num_features))  # P [H F]
        self.register_buffer("offset", torch.zeros(num_features))  # o [F]
        self.register_buffer("weight", torch.zeros(num_features, code_size))  # W [F D]
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def features(self, h):
        return torch.relu(h @ self.projection + self.offset)  # [B F]

    def forward(self, h):
        return self.features(h) @ self.weight  # [B D]


class TableRead(_FittedAfterTraining):
    r"""The last step's read into a code table of its own (``refit_code_size`` N): the oracle
    :math:`\hat x_0 = B h + \phi(h) C + c` in N dimensions, ranked against a fixed ``[n_items N]`` table (the
    training data's SVD codes), instead of the denoiser's read into the model's own codes. Wider codes carry more of
    a distribution over items through a dot product (the readout ceilings of ``inspect_dreamrec.py readout``), and
    the table is fixed after training, so its width costs nothing in training. x_T is not read: at the last step it
    carries almost nothing of x_0, and without it the oracle is the read's estimate of the conditional mean code.

    With ``last_item`` (``refit_last_item``) the read also takes the history's last item itself: a row of its own
    per item, :math:`T_{i_L}` (``last_item_weight`` ``[n_items N]``), added to the oracle, a first-order
    transition read beside h (as FPMC's Markov part); with ``refit_last_item_lags`` K > 1 the same rows read the
    last K items, :math:`\sum_k a^k T_{i_{L-k}}` (a the ``refit_last_item_decay``). The unconditional read adds
    their mean over the training targets instead (``last_item_mean`` ``[N]``), as the null vector is the mean h.

    The table (``codes``), B ``[H N]``, c ``[N]``, T and the features' read (a :class:`RandomFeatureRead` of width
    N, where ``refit_features`` F > 0) are buffers: zero and off until ``refit_last_step`` fills the table and fits
    the read (:func:`~recbole_dreamrec.model.refit.refit_last_step`).

    Args:
        hidden_size (int): H, the size of h.
        n_items (int): the number of items (RecBole's, the padding id included).
        table_size (int): N, the size of the table's codes.
        num_features (int): F, the random features of h read with it (0: none).
        last_item (bool): read the history's last item too.
    """

    def __init__(self, hidden_size, n_items, table_size, num_features=0, last_item=False):
        super().__init__()
        self.register_buffer("codes", torch.zeros(n_items, table_size))  # [n_items N]
        self.register_buffer("weight", torch.zeros(hidden_size, table_size))  # B [H N]
        self.register_buffer("bias", torch.zeros(table_size))  # c [N]
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.feature_read = RandomFeatureRead(hidden_size, table_size, num_features) if num_features else None
        # T [n_items N] and its mean over the training targets [N]; None (not saved) without last_item
        self.register_buffer("last_item_weight", torch.zeros(n_items, table_size) if last_item else None)
        self.register_buffer("last_item_mean", torch.zeros(table_size) if last_item else None)

    @property
    def reads_last_item(self):
        return self.last_item_weight is not None

    def forward(self, h, last_items=None, weights=(1.0,)):
        """The oracle ``[B N]`` of guidance vectors h ``[B H]`` (and, where the read takes it, the histories' last
        items ``[B K]``, the last first, read as ``sum_k weights[k] T[item k]``; ``None``: the unconditional read's
        mean of that sum)."""
        x_0 = h @ self.weight + self.bias  # [B N]
        if self.feature_read is not None:
            x_0 = x_0 + self.feature_read(h)  # [B N]
        if self.reads_last_item:
            if last_items is None:
                x_0 = x_0 + self.last_item_mean  # [B N]
            else:
                for k, weight in enumerate(weights):
                    if weight:
                        x_0 = x_0 + weight * self.last_item_weight[last_items[:, k]]  # [B N]
        return x_0


DENOISERS = {"mlp1": MLP1Denoiser, "mlp2": MLP2Denoiser}


def build_denoiser(name, hidden_size, code_size=None):
    """The denoiser registered as ``name`` in :data:`DENOISERS`, for guidance size H and code size D."""
    if name not in DENOISERS:
        raise ValueError(f"denoiser_type must be one of {sorted(DENOISERS)}, got {name!r}")
    return DENOISERS[name](hidden_size, code_size)
