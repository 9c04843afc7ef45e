"""Exploration (2026-12-03): the shipped read's last-item rows T, read by a decayed sum of the last K items instead of
the last item alone (the same rows shared: no new coefficients, unlike the second last item's own block,
``explore_second_item.py``, which lost).

The ridge least squares (ridge 1 on [h phi(h)], ``refit_last_item_ridge`` on T's rows, the bias unshrunk, every
training target) of the target's full-rank SVD code from [h, phi(h), x, 1], x = sum_k a^k onehot(item k before the
last) for k < K (a history shorter than K adds the padding row for the missing items); a = 0 is the shipped read.
One pass keeps the lag-by-lag blocks (pair counts per pair of lags, rows summed per lag), so every a is assembled
afterwards. Ranked on valid guided (w = 32); "paired" is the per-user NDCG@10 difference from a = 0.

    python benchmarks/results/ml-1m/history-read/explore_recent_items.py <checkpoint> [<K> [<one-hot ridge>]]
"""
import sys, time, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # refit_exploration
from recbole_dreamrec.analysis.evaluation import paired_difference, Rescored
from recbole_dreamrec.data import WINDOW_TARGETS_FIELD, train_loader
from recbole_dreamrec.model.dreamrec import window_positions
from refit_exploration import load

model_file = sys.argv[1]
K = int(sys.argv[2]) if len(sys.argv) > 2 else 3
onehot_ridge = float(sys.argv[3]) if len(sys.argv) > 3 else 100.0
F, w = 4096, 32.0
ck, model, H, n, codes, R, bias = load(model_file, F)
scale = None
E = H + F  # [h phi], then T's one-hot rows, then the bias


def dense(h):  # [M E+1]: h, phi(h), 1
    return torch.cat([h, torch.relu((h / scale) @ R + bias), torch.ones_like(h[:, :1])], 1)


def lagged(seq, positions, k):  # the item k before each position (0, the padding id, where there is none)
    return torch.where(positions >= k, seq.gather(1, (positions - k).clamp(min=0)), torch.zeros_like(positions))


t0 = time.time()
gram = torch.zeros(E + 1, E + 1, dtype=torch.float64)
sums = torch.zeros(n, E + 1, dtype=torch.float64)
by = [torch.zeros(n, E + 1, dtype=torch.float64) for _ in range(K)]  # rows summed per item at lag k
pair = [torch.zeros(n, n, dtype=torch.float64) for _ in range(K)]  # (target, item at lag k) counts
lags = [[torch.zeros(n, n, dtype=torch.float64) for _ in range(K)] for _ in range(K)]  # (lag k item, lag l item)
with torch.no_grad():
    for batch in train_loader(ck.config, ck.train_data):
        seq, lengths = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
        positions, counts = window_positions(lengths, batch[WINDOW_TARGETS_FIELD])  # [B C]
        h, target = model.training_targets(batch)  # [M H], [M]
        items = [lagged(seq, positions, k)[counts] for k in range(K)]  # [M] each
        if scale is None:
            scale = h.std(0).mean()
        d = dense(h).double()
        gram += d.T @ d
        sums.index_add_(0, target, d)
        one = torch.ones(len(target), dtype=torch.float64)
        for k in range(K):
            by[k].index_add_(0, items[k], d)
            pair[k].index_put_((target, items[k]), one, accumulate=True)
            for l in range(K):
                lags[k][l].index_put_((items[k], items[l]), one, accumulate=True)
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
        x = sum(self.a ** k * torch.nn.functional.one_hot(lagged(seq, last, k).squeeze(1), n).float() for k in range(K))
        return (1 + w) * (torch.cat([dense(h)[:, :-1], x, torch.ones_like(h[:, :1])], 1) @ self.scores) - self.null


rd = Read(model)
base = None
for a in (0.0, 0.25, 0.5, 1.0):
    t0 = time.time()
    weights = [a ** k for k in range(K)]  # 0 ** 0 = 1: a = 0 is the last item alone
    G = torch.zeros(size, size, dtype=torch.float64)
    G[dense_at[:, None], dense_at] = gram
    by_a = sum(wk * b for wk, b in zip(weights, by))
    G[at[:, None], dense_at] = by_a
    G[dense_at[:, None], at] = by_a.T
    G[at[:, None], at] = sum(weights[k] * weights[l] * lags[k][l] for k in range(K) for l in range(K))
    S = torch.zeros(n, size, dtype=torch.float64)
    S[:, dense_at] = sums
    S[:, at] = sum(wk * p for wk, p in zip(weights, pair))
    penalty = torch.ones(size, dtype=torch.float64)
    penalty[at] = onehot_ridge
    penalty[-1] = 0.0
    sol = torch.linalg.solve(G + torch.diag(penalty), S.T @ codes)
    rd.a, rd.scores = a, (sol @ codes.T).float()
    rd.null = w * ((G[-1] / G[-1, -1]).float()[None] @ rd.scores)
    with torch.no_grad():
        vals, per = ck.user_metrics(eval_data, ["ndcg@10", "hit@10"], rescored=rd)
    if base is None:
        base = per
    print(f"K {K}, a {a:g}, one-hot ridge {onehot_ridge:g}, w {w:g}: valid ndcg@10 {vals['ndcg@10']} hit@10 "
          f"{vals['hit@10']} paired vs a = 0 {paired_difference(per['ndcg@10'], base['ndcg@10'])} "
          f"({time.time() - t0:.0f}s)", flush=True)
