"""Item codes from the training data (``item_embedding_init: svd``): the matrix, the SVD, the scaling."""

import numpy as np
import pytest
import scipy.sparse
import torch

from recbole_dreamrec.model.item_init import interaction_matrix, right_singular_vectors, svd_item_codes


def test_interaction_matrix_is_binary_users_by_history_and_target_items():
    # user 0 has two augmented rows ([1] -> 2, [1, 2] -> 3); user 1 has one ([3] -> 1); position 1 of a length-1
    # history is padding and must not count
    matrix = interaction_matrix(
        user_ids=torch.tensor([0, 0, 1]),
        item_seqs=torch.tensor([[1, 0], [1, 2], [3, 0]]),
        item_seq_lens=torch.tensor([1, 2, 1]),
        target_ids=torch.tensor([2, 3, 1]),
        n_users=2,
        n_items=5,
    )
    assert scipy.sparse.issparse(matrix) and matrix.shape == (2, 5)
    expected = np.array([[0, 1, 1, 1, 0], [0, 1, 0, 1, 0]], dtype=np.float64)
    assert np.array_equal(matrix.toarray(), expected)


def low_rank_matrix(n_users=60, n_items=40, rank=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    left = torch.randn(n_users, rank, generator=g, dtype=torch.float64)
    right = torch.randn(rank, n_items, generator=g, dtype=torch.float64) * torch.tensor([[9.0], [4.0], [2.0]])
    dense = left @ right + 0.01 * torch.randn(n_users, n_items, generator=g, dtype=torch.float64)
    return dense


def sparse(dense):
    return scipy.sparse.csr_matrix(dense.numpy())


@pytest.mark.parametrize("rank", [3, 5, 40])  # truncated (scipy's svds) and full rank (dense SVD)
def test_singular_vectors_match_the_exact_svd(rank):
    dense = low_rank_matrix()
    _, _, vh = torch.linalg.svd(dense, full_matrices=False)
    v = right_singular_vectors(sparse(dense), rank, torch.Generator().manual_seed(1))
    assert v.shape == (40, rank) and v.dtype == torch.float64
    # the leading three are the same vectors up to sign, in order
    assert torch.allclose((vh[:3] @ v[:, :3]).abs().diagonal(), torch.ones(3, dtype=torch.float64), atol=1e-6)
    # and the generator makes the result reproducible
    assert torch.equal(v, right_singular_vectors(sparse(dense), rank, torch.Generator().manual_seed(1)))


def test_svd_codes_scale_padding_and_determinism():
    matrix = sparse(low_rank_matrix())
    codes = svd_item_codes(matrix, 3, std=2.0, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (40, 3) and codes.dtype == torch.float32
    assert torch.all(codes[0] == 0)  # RecBole's padding item
    assert codes[1:].pow(2).mean().sqrt().item() == pytest.approx(2.0, rel=1e-5)
    # every dimension carries the same energy (unit singular vectors, one common scale)
    energies = codes[1:].pow(2).sum(0)
    assert torch.allclose(energies, energies.mean().expand(3), rtol=0.1)
    again = svd_item_codes(matrix, 3, std=2.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(codes, again)


def test_svd_codes_beyond_the_rank_are_filled_with_normal_draws():
    matrix = sparse(low_rank_matrix(n_users=5, n_items=40))  # rank at most 5
    codes = svd_item_codes(matrix, 8, std=1.0, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (40, 8)
    assert torch.all(codes[0] == 0)
    assert codes[1:, 5:].std().item() == pytest.approx(1.0, abs=0.25)


def test_full_rank_with_more_rows_than_items_gives_every_singular_vector_in_order():
    # full rank of a 60 x 40 matrix (more users than items, as on Zhihu's rows): every right singular vector, in
    # decreasing order of singular value, up to sign, orthonormal; the 37 beyond the leading three are the noise's,
    # with distinct singular values, so a vector out of order (or the eigenvectors read as rows) shows.
    dense = low_rank_matrix()
    _, values, vh = torch.linalg.svd(dense, full_matrices=False)
    assert torch.all(values[:-1] - values[1:] > 1e-6)  # distinct: each vector is defined up to sign
    v = right_singular_vectors(sparse(dense), 40)
    assert torch.allclose((vh @ v).abs().diagonal(), torch.ones(40, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(v.T @ v, torch.eye(40, dtype=torch.float64), atol=1e-10)
    # a wide matrix (fewer users than items) at full rank: its min(m, n) vectors, as the exact SVD's
    wide = low_rank_matrix(n_users=30, n_items=40)
    _, _, vh = torch.linalg.svd(wide, full_matrices=False)
    v = right_singular_vectors(sparse(wide), 30)
    assert v.shape == (40, 30)
    assert torch.allclose((vh @ v).abs().diagonal(), torch.ones(30, dtype=torch.float64), atol=1e-5)


def test_svd_codes_wider_than_the_items_fill_the_rest_with_normal_draws_of_the_given_scale():
    # 40 items, 50-d codes: the 40 singular vectors (full rank), then 10 columns of N(0, std^2) draws
    matrix = sparse(low_rank_matrix())
    codes = svd_item_codes(matrix, 50, std=3.0, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (40, 50)
    singular = right_singular_vectors(matrix, 40)  # [40 40], orthonormal columns
    scale = 3.0 / singular[1:].pow(2).mean().sqrt()
    assert torch.allclose(codes[1:, :40].double().abs(), (singular[1:] * scale).abs(), atol=1e-5)
    assert codes[1:, 40:].std().item() == pytest.approx(3.0, rel=0.2)


def test_full_rank_codes_with_more_rows_than_items_never_densify_the_whole_matrix(monkeypatch):
    # the cost of the full-rank table on pre-split data (Zhihu: 77,713 rows x 4,840 items): the [n n] Gram matrix's
    # eigendecomposition, not a dense SVD of the [m n] matrix
    import recbole_dreamrec.model.item_init as item_init

    def no_dense_svd(*args, **kwargs):
        raise AssertionError("the dense SVD of the whole training matrix")

    monkeypatch.setattr(item_init.np.linalg, "svd", no_dense_svd)
    assert right_singular_vectors(sparse(low_rank_matrix()), 40).shape == (40, 40)
