"""Initial item embeddings for DreamRec: the paper's random N(0, std^2) codes, or codes from the training data.

The item embeddings are DreamRec's diffusion data x_0, and items are ranked by the dot product of a generated x_0
with every item's embedding. With random codes in ``H`` dimensions and many more items than ``H``, such a dot product
cannot express a distribution over items: even the exact training popularity, encoded as ``sum_j p_j e_j`` and read
out as ``e_i . sum_j p_j e_j``, ranks items nearly at random on ml-100k at H = 64 (test NDCG@10 0.0032, against
0.0232 for ranking by popularity itself, same evaluator). Codes whose geometry follows the data fix that: with the
leading right singular vectors of the training user-item matrix the same readout scores 0.0235
(``inspect_dreamrec.py readout``, :mod:`recbole_dreamrec.analysis.readout`; benchmarks/results/ml-100k/readout.md).
"""

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

ITEM_EMBEDDING_INITS = ("normal", "svd")


def interaction_matrix(user_ids, item_seqs, item_seq_lens, target_ids, n_users, n_items):
    """Binary ``[n_users n_items]`` matrix (``scipy.sparse`` CSR, float64) of the items in each training row's
    history and target.

    Rows are grouped by user id (a session id for pre-split session data), so a user with many augmented training
    rows contributes each of their items once.
    """
    positions = torch.arange(item_seqs.shape[1], device=item_seqs.device).unsqueeze(0)  # [1 L]
    in_history = positions < item_seq_lens.unsqueeze(1)  # [N L]
    rows = torch.cat([user_ids.unsqueeze(1).expand_as(item_seqs)[in_history], user_ids]).cpu().numpy()
    cols = torch.cat([item_seqs[in_history], target_ids]).cpu().numpy()
    matrix = scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))  # sums repeats
    matrix.data[:] = 1.0
    return matrix


def sequential_interaction_matrix(dataset, model, group_field=None):
    """:func:`interaction_matrix` of the rows of a RecBole sequential dataset (e.g. the training split), read through
    ``model``'s field names, one matrix row per user, or per value of ``group_field`` (e.g. a session id column of
    pre-split data whose user id is one per row)."""
    feat = dataset.inter_feat
    field = group_field or dataset.uid_field
    return interaction_matrix(
        feat[field],
        feat[model.ITEM_SEQ],
        feat[model.ITEM_SEQ_LEN],
        feat[model.ITEM_ID],
        dataset.num(field),
        model.n_items,
    )


def svd_item_codes(matrix, dim, std, generator=None):
    """``[n_items dim]`` codes: the leading right singular vectors of ``matrix`` (a ``scipy.sparse`` matrix, e.g.
    :func:`interaction_matrix`), scaled to mean square ``std^2``.

    The singular vectors come from :func:`right_singular_vectors` (a truncated SVD, seeded from ``generator``).
    Every column is a unit singular vector before the common scaling, so each dimension carries the same energy
    (the codes are isotropic in their second moments, like the paper's N(0, std^2) codes). When ``dim`` exceeds the
    rank the SVD can give (``min(n_users, n_items)``), the extra columns are N(0, std^2) draws.
    Items absent from training get zero codes from the SVD part.
    """
    n_users, n_items = matrix.shape
    rank = min(dim, n_users, n_items)
    codes = right_singular_vectors(matrix, rank, generator)  # [n_items rank]
    active = codes[1:]  # item 0 is RecBole's padding id
    codes = codes * (std / active.pow(2).mean().sqrt())
    if rank < dim:
        extra = torch.randn(n_items, dim - rank, generator=generator, dtype=codes.dtype) * std
        codes = torch.cat([codes, extra], dim=1)
    codes[0] = 0.0
    return codes.float()


def right_singular_vectors(matrix, rank, generator=None):
    """The ``rank`` leading right singular vectors of a ``[m n]`` ``scipy.sparse`` matrix, ``[n rank]`` float64,
    in decreasing order of singular value.

    A truncated SVD with ``scipy.sparse.linalg.svds`` (ARPACK, about a second for ml-1m), whose starting vector is
    drawn from ``generator`` so that the result is reproducible. ARPACK computes fewer than ``min(m, n)`` vectors, so
    a full-rank request is answered exactly: with more rows than items, by the eigenvectors of the ``[n n]`` Gram
    matrix ``A^T A`` (its eigenvalues the squared singular values; on Zhihu's 77,713 x 4,840 training matrix 15 CPU
    seconds and 1.5 GB at peak, against 281 s and 12.7 GB for the dense SVD), else by the dense SVD of the (then
    small) matrix.
    """
    matrix = scipy.sparse.csr_matrix(matrix, dtype=np.float64)
    if rank < min(matrix.shape):
        v0 = torch.rand(min(matrix.shape), generator=generator, dtype=torch.float64).numpy() - 0.5
        _, values, vt = scipy.sparse.linalg.svds(matrix, k=rank, v0=v0)
    elif matrix.shape[0] > matrix.shape[1]:
        squares, vectors = np.linalg.eigh((matrix.T @ matrix).toarray())  # ascending eigenvalues
        values, vt = np.sqrt(np.clip(squares, 0.0, None)), vectors.T
    else:
        _, values, vt = np.linalg.svd(matrix.toarray(), full_matrices=False)
    order = np.argsort(-values, kind="stable")[:rank]
    return torch.from_numpy(np.ascontiguousarray(vt[order].T))
