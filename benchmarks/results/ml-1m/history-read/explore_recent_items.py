"""Exploration (2026-12-03): the shipped read's last-item rows T, read by a decayed sum of the last K items instead of
the last item alone (the same rows shared: no new coefficients, unlike the second last item's own block,
``explore_second_item.py``, which lost).

The ridge least squares (ridge 1 on [h phi(h)], ``refit_last_item_ridge`` on T's rows, the bias unshrunk, every
training target) of the target's full-rank SVD code from [h, phi(h), x, 1], x = sum_k a^k onehot(item k before the
last) for k < K (a history shorter than K adds the padding row for the missing items); a = 0 is the shipped read.
One pass sums each (K, a)'s blocks of the normal equations per item (``weighted_normal_equations``). Ranked on valid guided (w = 32); "paired" is the per-user NDCG@10 difference
from the grid's first read.

    python benchmarks/results/ml-1m/history-read/explore_recent_items.py <checkpoint> [<K> [<one-hot ridge> [<grid> [<F>]]]]

<grid>: comma-separated K:a pairs (e.g. ``3:0.5,5:0.5,8:0.75``; <K> is then not read; K = 0: no item read, the table
read of h alone); without it (or "-"), a = 0, 0.25, 0.5, 1 at K (the first, a = 0, the reference). <F>: random
features (4,096 unless given).
"""
import sys, time, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # refit_exploration
from recbole_dreamrec.analysis.evaluation import paired_difference, Rescored
from refit_exploration import lagged, load, weighted_normal_equations

model_file = sys.argv[1]
K = int(sys.argv[2]) if len(sys.argv) > 2 else 3
onehot_ridge = float(sys.argv[3]) if len(sys.argv) > 3 else 100.0
if len(sys.argv) > 4 and sys.argv[4] != "-":
    grid = [(int(k), float(a)) for k, a in (pair.split(":") for pair in sys.argv[4].split(","))]
else:
    grid = [(K, a) for a in (0.0, 0.25, 0.5, 1.0)]
F, w = (int(sys.argv[5]) if len(sys.argv) > 5 else 4096), 32.0
ck, model, H, n, codes, R, bias = load(model_file, F)
scale = None
E = H + F  # [h phi], then T's one-hot rows, then the bias


def dense(h):  # [M E+1]: h, phi(h), 1 (h divided by its mean coordinate spread over the first training batch)
    global scale
    if scale is None:
        scale = h.std(0).mean()
    return torch.cat([h, torch.relu((h / scale) @ R + bias), torch.ones_like(h[:, :1])], 1)


t0 = time.time()
weightings = [[a ** k for k in range(k_read)] for k_read, a in grid]  # 0 ** 0 = 1: a = 0 is the last item alone
gram, sums, blocks = weighted_normal_equations(ck, model, dense, n, weightings)
print(f"normal equations: {time.time() - t0:.0f}s", flush=True)

size = E + n + 1
dense_at = torch.cat([torch.arange(E), torch.tensor([size - 1])])
at = torch.arange(E, E + n)
eval_data = ck.split_data("valid")


class Read(Rescored):
    def full_sort_predict(self, interaction):
        seq, lengths = interaction[self.model.ITEM_SEQ], interaction[self.model.ITEM_SEQ_LEN]
        h = self.model.forward(seq, lengths)
        last = (lengths - 1).unsqueeze(1)
        x = sum((wk * torch.nn.functional.one_hot(lagged(seq, last, k).squeeze(1), n).float()
                 for k, wk in enumerate(self.weights)), torch.zeros(len(h), n))
        return (1 + w) * (torch.cat([dense(h)[:, :-1], x, torch.ones_like(h[:, :1])], 1) @ self.scores) - self.null


rd = Read(model)
base = None
for (k_read, a), weights, (by, pair, cross) in zip(grid, weightings, blocks):
    t0 = time.time()
    G = torch.zeros(size, size, dtype=torch.float64)
    G[dense_at[:, None], dense_at] = gram
    G[at[:, None], dense_at] = by
    G[dense_at[:, None], at] = by.T
    G[at[:, None], at] = cross
    S = torch.zeros(n, size, dtype=torch.float64)
    S[:, dense_at] = sums
    S[:, at] = pair
    penalty = torch.ones(size, dtype=torch.float64)
    penalty[at] = onehot_ridge
    penalty[-1] = 0.0
    sol = torch.linalg.solve(G + torch.diag(penalty), S.T @ codes)
    rd.weights, rd.scores = weights, (sol @ codes.T).float()
    rd.null = w * ((G[-1] / G[-1, -1]).float()[None] @ rd.scores)
    with torch.no_grad():
        vals, per = ck.user_metrics(eval_data, ["ndcg@10", "hit@10"], rescored=rd)
    if base is None:
        base = per
    print(f"K {k_read}, a {a:g}, one-hot ridge {onehot_ridge:g}, w {w:g}: valid ndcg@10 {vals['ndcg@10']} hit@10 "
          f"{vals['hit@10']} paired vs K {grid[0][0]}, a {grid[0][1]:g} "
          f"{paired_difference(per['ndcg@10'], base['ndcg@10'])} "
          f"({time.time() - t0:.0f}s)", flush=True)
