"""Sampling noise keyed to each row's own history: the same history and seed give the same noise, whatever else is
in the batch, however many processes evaluate, on any device.

A counter-based generator: the noise of row ``r`` at draw ``i`` and dimension ``d`` is a hash of
``(seed, history of r, i, d)`` turned into a standard normal by the Box-Muller transform, computed for the whole
batch at once. It replaces a shared ``torch.Generator`` (whose draws depend on a row's position in the batch) in
DreamRec's evaluation, so metrics do not depend on ``eval_batch_size``, the number of processes or full-sort vs.
sampled evaluation, and the inspection tool regenerates exactly what the evaluation generated.

The hash is Chris Wellons' 32-bit ``lowbias32`` mixer, computed in int64 with 16-bit partial products so that no
intermediate value overflows (results are identical on every device).
"""

import math

import torch

MASK32 = 0xFFFFFFFF


def _mul32(x, c):
    """``(x * c) mod 2^32`` for int64 ``x`` in ``[0, 2^32)`` and a 32-bit constant ``c``, without overflow."""
    low, high = x & 0xFFFF, x >> 16
    return (low * c + (((high * c) & 0xFFFF) << 16)) & MASK32


def mix32(x):
    """A 32-bit integer hash (lowbias32), elementwise on an int64 tensor of values in ``[0, 2^32)``."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


POSITION_SALT = 0x9E3779B9  # (the golden ratio's 32-bit constant) keeps position 0's hash away from item ids


def history_keys(item_seq, item_seq_len, seed):
    """One 32-bit key per row from the seed, the history's length and its item ids in their positions, ``[B]``
    int64, computed for all positions at once:

    ``mix32(mix32(seed ^ mix32(n)) ^ (sum_{j < n} mix32(mix32(item_j) ^ mix32(j + salt)) mod 2^32))``

    Only the real items count (positions ``< item_seq_len``), so the padding length does not change the key; each
    item is hashed with its position, so the same items in another order give another key. ``seed`` may also be a
    sequence of S seeds: then ``[S B]``, the keys of each seed (the history's part is hashed once).
    """
    item_seq, item_seq_len = item_seq.long(), item_seq_len.long()
    positions = torch.arange(item_seq.shape[1], device=item_seq.device)  # [L]
    position_hash = mix32((positions + POSITION_SALT) & MASK32)  # [L]
    terms = mix32(mix32(item_seq & MASK32) ^ position_hash)  # [B L]
    terms = torch.where(positions < item_seq_len.unsqueeze(1), terms, torch.zeros_like(terms))
    history = terms.sum(dim=1) & MASK32  # [B]: at most L * 2^32 before the mask, exact in int64
    seeds = torch.tensor(seed if isinstance(seed, (list, tuple)) else [seed], dtype=torch.long,
                         device=item_seq.device) & MASK32  # [S]
    keys = mix32(mix32(seeds.unsqueeze(1) ^ mix32(item_seq_len & MASK32).unsqueeze(0)) ^ history)  # [S B]
    return keys if isinstance(seed, (list, tuple)) else keys[0]


class KeyedNoise:
    """Standard normal noise ``[B D]`` for draw ``i`` of every row, determined by the row's key alone.

    Args:
        keys (torch.LongTensor): one key per row, ``[B]`` (see :func:`history_keys`).
    """

    def __init__(self, keys):
        self.keys = keys

    def __call__(self, i, shape, device=None, dtype=torch.float32):
        rows, dim = shape
        if rows != self.keys.shape[0]:
            raise ValueError(f"noise for {rows} rows asked of {self.keys.shape[0]} keys")
        device = self.keys.device if device is None else device
        base = mix32(self.keys.to(device) ^ mix32(torch.tensor(int(i) & MASK32, device=device)))  # [B]
        pairs = torch.arange((dim + 1) // 2, device=device, dtype=torch.long) * 2  # [ceil(D/2)]
        # two uniforms in (0, 1) per pair of dimensions, (k + 0.5) / 2^32, and Box-Muller: r cos, r sin
        u1 = (mix32(base.unsqueeze(1) ^ pairs).to(torch.float64) + 0.5) / 2.0**32  # [B D/2]
        u2 = (mix32(base.unsqueeze(1) ^ (pairs + 1)).to(torch.float64) + 0.5) / 2.0**32
        radius, angle = torch.sqrt(-2.0 * torch.log(u1)), 2.0 * math.pi * u2
        normal = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1).reshape(rows, -1)
        return normal[:, :dim].to(dtype)
