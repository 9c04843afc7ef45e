"""Exploration (2026-12-03): is ridge 1, the shipped refit's, the right shrinkage for its read?

The shipped ml-1m read (``refit_last_item``): the ridge least squares of the target's full-rank SVD code from
[h, phi(h), onehot(last item), 1] over every training target, one ridge (1) for every coefficient but the bias. Its
dense block [h phi] sees 800k targets; a last item's one-hot row sees only that item's count as a last item (tens to
thousands), so the two blocks may want different shrinkage. Here the normal equations are built once (the features
drawn as in ``../history-read/explore_history_read.py``, the one-hot block summed per last item as the product's
refit does) and solved for a grid of (dense ridge, one-hot ridge), each read ranked on valid guided as the model reads,
(1 + w) read(x) - w read(mean x); "paired" is the per-user NDCG@10 difference from the grid's first read at w = 32, with its
standard error. Then the guidance weight at the grid's best (w = 16, 64).

    python benchmarks/results/ml-1m/refit-ridge/explore_ridge.py <checkpoint> <dense ridges> <one-hot ridges> [<F>]

(ridges comma separated; the first of each is the reference of the paired column).
"""
import sys, time, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # refit_exploration
from recbole_dreamrec.analysis.evaluation import paired_difference, Rescored
from refit_exploration import load, weighted_normal_equations

model_file = sys.argv[1]
dense_ridges = [float(r) for r in sys.argv[2].split(",")]
onehot_ridges = [float(r) for r in sys.argv[3].split(",")]
F = int(sys.argv[4]) if len(sys.argv) > 4 else 4096
ck, model, H, n, codes, R, bias = load(model_file, F)
scale = None
E = H + F  # [h phi], then the one-hot block of the last item, then the bias


def dense(h):  # [M E+1]: h, phi(h), 1 (h divided by its mean coordinate spread over the first training batch)
    global scale
    if scale is None:
        scale = h.std(0).mean()
    return torch.cat([h, torch.relu((h / scale) @ R + bias), torch.ones_like(h[:, :1])], 1)


t0 = time.time()
# the last item's one-hot block: rows summed per last item, (target, last) counts; its own block is diagonal
gram, sums, [(by, pair, _)] = weighted_normal_equations(ck, model, dense, n, [[1.0]])
print(f"normal equations: {time.time() - t0:.0f}s", flush=True)

size = E + n + 1  # [h phi | onehot | 1]
dense_at = torch.cat([torch.arange(E), torch.tensor([size - 1])])
at = torch.arange(E, E + n)
G = torch.zeros(size, size, dtype=torch.float64)
G[dense_at[:, None], dense_at] = gram
G[at[:, None], dense_at] = by
G[dense_at[:, None], at] = by.T
G[at, at] = by[:, -1]
S = torch.zeros(n, size, dtype=torch.float64)
S[:, dense_at] = sums
S[:, at] = pair
rhs = S.T @ codes  # [size N]
mean_row = (G[-1] / G[-1, -1]).float()
diag = torch.diagonal(G)
for name, idx in (("h", torch.arange(H)), ("phi", torch.arange(H, E)), ("onehot", at)):
    q = torch.quantile(diag[idx], torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    print(f"gram diagonal, {name}: 10% {q[0]:.3g}, median {q[1]:.3g}, 90% {q[2]:.3g}", flush=True)


class Read(Rescored):
    def full_sort_predict(self, interaction):
        seq, lengths = interaction[self.model.ITEM_SEQ], interaction[self.model.ITEM_SEQ_LEN]
        h = self.model.forward(seq, lengths)
        last = seq.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)
        x = torch.cat([dense(h)[:, :-1], torch.nn.functional.one_hot(last, n).float(), torch.ones_like(h[:, :1])], 1)
        return (1 + self.w) * (x @ self.scores) - self.null


eval_data = ck.split_data("valid")
rd = Read(model)
base = None


def read(dense_ridge, onehot_ridge, w):
    global base
    t0 = time.time()
    penalty = torch.full((size,), float(dense_ridge), dtype=torch.float64)
    penalty[at] = float(onehot_ridge)
    penalty[-1] = 0.0
    sol = torch.linalg.solve(G + torch.diag(penalty), rhs)
    rd.scores = (sol @ codes.T).float()
    rd.w, rd.null = w, w * (mean_row[None] @ rd.scores)
    with torch.no_grad():
        vals, per = ck.user_metrics(eval_data, ["ndcg@10", "hit@10"], rescored=rd)
    if base is None:
        base = per
    print(f"dense ridge {dense_ridge:g}, one-hot ridge {onehot_ridge:g}, w {w:g}: valid ndcg@10 {vals['ndcg@10']} "
          f"hit@10 {vals['hit@10']} paired vs ({dense_ridges[0]:g}, {onehot_ridges[0]:g}, 32) {paired_difference(per['ndcg@10'], base['ndcg@10'])} "
          f"({time.time() - t0:.0f}s)", flush=True)
    return vals["ndcg@10"]


results = {}
for dense_ridge in dense_ridges:
    for onehot_ridge in onehot_ridges:
        results[dense_ridge, onehot_ridge] = read(dense_ridge, onehot_ridge, 32.0)
best = max(results, key=results.get)
for w in (16.0, 64.0):
    read(*best, w)
