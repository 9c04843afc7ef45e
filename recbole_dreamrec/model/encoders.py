"""Guidance encoders for DreamRec: the history's item embeddings -> the guidance vector h at chosen positions.

Every encoder is causal (position j sees positions 0 .. j), so one pass over a window gives the guidance vector of
each of its prefixes (the training windows of :mod:`recbole_dreamrec.data`); at the last real position it is the
history's h. Three architectures, chosen by ``encoder_type``:

- ``sasrec`` (default): RecBole's SASRec Transformer (LayerNorm and dropout on the embedding sum, post-LN layers,
  GELU feed-forward of ``inner_size``), implemented in :class:`recbole_dreamrec.model.dreamrec.DreamRec` so that
  its value equals ``SASRec``'s encoder gathered at the same positions.
- ``paper``: the one-block encoder of the DreamRec authors' code (:class:`PaperEncoder`), for the faithful preset.
- ``gru``: RecBole's GRU4Rec encoder (:class:`GRUEncoder`).
"""

import torch
from torch import nn

ENCODER_TYPES = ("sasrec", "paper", "gru")


class PaperEncoder(nn.Module):
    r"""The DreamRec code's guidance encoder, a single self-attention block, computed at the last real position.

    Differences from SASRec's encoder, all deliberate here (they are what the paper's numbers were produced with):

    1. the embedding sum (item + position, both N(0, 1) in the paper) is dropped out and padding positions are
       zeroed, with no LayerNorm: keys and values see the raw embeddings;
    2. only the queries are layer-normalised, and the attention's residual adds the normalised queries;
    3. scores are scaled by :math:`1/\sqrt{H}` (not per head), padding keys and future positions are masked;
    4. a ReLU feed-forward of width H, ``LN(FF(LN(a)) + LN(a))``, then a final LayerNorm gives h.

    Args:
        hidden_size (int): H.
        n_heads (int): attention heads (H must be divisible by it).
        dropout_prob (float): dropout on the embeddings, the attention weights and the feed-forward output.
        layer_norm_eps (float): LayerNorm epsilon.
    """

    def __init__(self, hidden_size, n_heads, dropout_prob, layer_norm_eps=1e-5):
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"hidden_size {hidden_size} must be divisible by n_heads {n_heads}")
        self.hidden_size, self.n_heads = hidden_size, n_heads
        self.emb_dropout = nn.Dropout(dropout_prob)
        self.query_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.attn_dropout = nn.Dropout(dropout_prob)
        self.ff_in_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.ff_inner = nn.Linear(hidden_size, hidden_size)
        self.ff_outer = nn.Linear(hidden_size, hidden_size)
        self.ff_dropout = nn.Dropout(dropout_prob)
        self.ff_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.out_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def _heads(self, x):
        """``[B L H] -> [B heads L H/heads]``."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, -1).transpose(1, 2)

    def forward(self, input_emb, item_seq, positions):
        """``input_emb`` ``[B L H]`` (item + position embeddings), ``item_seq`` ``[B L]`` (0 = padding),
        ``positions`` ``[B C]`` (real positions; the history's last is ``item_seq_len - 1``) -> h ``[B C H]``."""
        rows = torch.arange(item_seq.shape[0], device=item_seq.device).unsqueeze(1)  # [B 1]
        real = (item_seq != 0).unsqueeze(-1).to(input_emb.dtype)  # [B L 1]
        seq = self.emb_dropout(input_emb) * real  # [B L H]
        query_input = self.query_norm(seq[rows, positions])  # [B C H]
        query = self._heads(self.query(query_input))  # [B heads C d]
        key, value = self._heads(self.key(seq)), self._heads(self.value(seq))  # [B heads L d]
        scores = torch.matmul(query, key.transpose(-1, -2)) / self.hidden_size**0.5  # [B heads C L]
        keys = torch.arange(item_seq.shape[1], device=item_seq.device)
        # real and not in the future of the query's position
        visible = (item_seq != 0).unsqueeze(1) & (keys.view(1, 1, -1) <= positions.unsqueeze(-1))  # [B C L]
        scores = scores.masked_fill(~visible.unsqueeze(1), -1e9)
        probs = self.attn_dropout(torch.softmax(scores, dim=-1))
        context = torch.matmul(probs, value).transpose(1, 2).reshape(query_input.shape)  # [B C H]
        attended = self.ff_in_norm(context + query_input)  # [B C H]
        ff = self.ff_dropout(self.ff_outer(torch.relu(self.ff_inner(attended))))
        out = self.ff_norm(ff + attended) * real[rows, positions]  # [B C H]
        return self.out_norm(out)  # [B C H]


class GRUEncoder(nn.Module):
    r"""RecBole's GRU4Rec encoder (Hidasi et al. 2016; Tan et al. 2016): dropout on the item embeddings, a GRU of
    ``n_layers`` layers of width H, and a linear layer, read at the asked positions. No position embeddings: the
    recurrence orders the items.

    Args:
        hidden_size (int): H, the size of the item embeddings, the GRU state and h.
        n_layers (int): GRU layers.
        dropout_prob (float): dropout on the item embeddings.
    """

    def __init__(self, hidden_size, n_layers, dropout_prob):
        super().__init__()
        self.emb_dropout = nn.Dropout(dropout_prob)
        self.gru = nn.GRU(hidden_size, hidden_size, num_layers=n_layers, bias=False, batch_first=True)
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, item_emb, positions):
        """``item_emb`` ``[B L H]``, ``positions`` ``[B C]`` -> h ``[B C H]`` (padding after the real items is
        never read: the GRU runs left to right)."""
        rows = torch.arange(item_emb.shape[0], device=item_emb.device).unsqueeze(1)  # [B 1]
        last = int(positions.max()) + 1  # the GRU need not run past the last position asked for
        output, _ = self.gru(self.emb_dropout(item_emb[:, :last]))  # [B last H]
        return self.dense(output[rows, positions])  # [B C H]
