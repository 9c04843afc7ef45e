"""The full-rank SVD codes of a checkpoint's training matrix, two ways: the dense SVD of the [m n] matrix (``svd``, what
``item_init.right_singular_vectors`` did at full rank) and the eigendecomposition of its [n n] Gram matrix (``eigh``,
what it does now with more rows than items); CPU seconds, peak memory and the leading singular values.

    OMP_NUM_THREADS=1 python benchmarks/results/ablation/zhihu-refit/svd_cost.py <checkpoint> svd|eigh
"""
import sys, time, resource, numpy as np
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from recbole_dreamrec.analysis.evaluation import Checkpoint
from recbole_dreamrec.model.item_init import sequential_interaction_matrix
import scipy.sparse
ck = Checkpoint(sys.argv[1])
m = scipy.sparse.csr_matrix(sequential_interaction_matrix(ck.train_data.dataset, ck.model), dtype=np.float64)
print("matrix", m.shape, m.nnz, flush=True)
which = sys.argv[2]
t0 = time.process_time()
if which == "svd":
    _, values, vt = np.linalg.svd(m.toarray(), full_matrices=False)
else:
    squares, vectors = np.linalg.eigh((m.T @ m).toarray())
    values = np.sqrt(np.clip(squares, 0, None))
print(which, f"cpu {time.process_time() - t0:.1f}s", "max rss GB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "top values", np.sort(values)[::-1][:3], flush=True)
