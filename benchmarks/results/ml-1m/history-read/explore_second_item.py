"""Exploration (2026-12-03): beside h, its random features and the history's last item (the shipped ml-1m read,
``refit_last_item``), does the item before it add anything (a second-order transition read)?

The ridge least squares (ridge 1, bias unshrunk, every training target) of the target's full-rank SVD code from
[h, phi(h), onehot(last), 1] and from [h, phi(h), onehot(last), onehot(second last), 1] (a history of one item has
the padding id 0 as its second last), ranked on valid unguided and guided (w; the unconditional read is that of the
mean row). The features are drawn as in ``explore_history_read.py``. The one-hot blocks of the normal equations are
summed per item (rows per last item, pair counts), not multiplied out. "paired" is the per-user NDCG@10 difference
from the first read, with its standard error.

    python benchmarks/results/ml-1m/history-read/explore_second_item.py <checkpoint> [<w> [<F>]]
"""
import sys, time, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # refit_exploration
from recbole_dreamrec.analysis.evaluation import paired_difference, Rescored
from recbole_dreamrec.model.refit import ridge_solution
from refit_exploration import lagged, load, training_batches

model_file = sys.argv[1]
w = float(sys.argv[2]) if len(sys.argv) > 2 else 32.0
F = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
ck, model, H, n, codes, R, bias = load(model_file, F)
scale = None
E = H + F  # [h phi], then one-hot blocks of the last and second last item, then the bias


def dense(h):  # [M E+1]: h, phi(h), 1
    return torch.cat([h, torch.relu((h / scale) @ R + bias), torch.ones_like(h[:, :1])], 1)


t0 = time.time()
gram = torch.zeros(E + 1, E + 1, dtype=torch.float64)
sums = torch.zeros(n, E + 1, dtype=torch.float64)
by = [torch.zeros(n, E + 1, dtype=torch.float64) for _ in range(2)]  # rows summed per last / second last item
pair = [torch.zeros(n, n, dtype=torch.float64) for _ in range(2)]  # (target, last) and (target, second last) counts
cross = torch.zeros(n, n, dtype=torch.float64)  # (last, second last) counts
for h, target, items in training_batches(ck, model, 2):  # items: the last and the second last item, [M] each
    if scale is None:
        scale = h.std(0).mean()
    d = dense(h).double()
    gram += d.T @ d
    sums.index_add_(0, target, d)
    one = torch.ones(len(target), dtype=torch.float64)
    for k in range(2):
        by[k].index_add_(0, items[k], d)
        pair[k].index_put_((target, items[k]), one, accumulate=True)
    cross.index_put_((items[0], items[1]), one, accumulate=True)
print(f"normal equations: {time.time() - t0:.0f}s", flush=True)

# assembled as [h phi | onehot1 | onehot2 | 1]
size = E + 2 * n + 1
dense_at = torch.cat([torch.arange(E), torch.tensor([size - 1])])
at = [torch.arange(E, E + n), torch.arange(E + n, E + 2 * n)]
G = torch.zeros(size, size, dtype=torch.float64)
G[dense_at[:, None], dense_at] = gram
S = torch.zeros(n, size, dtype=torch.float64)
S[:, dense_at] = sums
for k in range(2):
    G[at[k][:, None], dense_at] = by[k]
    G[dense_at[:, None], at[k]] = by[k].T
    G[at[k], at[k]] = by[k][:, -1]
    S[:, at[k]] = pair[k]
G[at[0][:, None], at[1]] = cross
G[at[1][:, None], at[0]] = cross.T
mean_row = (G[-1] / G[-1, -1]).float()


def design(h, items):  # [M size]
    onehots = [torch.nn.functional.one_hot(i, n).float() for i in items]
    d = dense(h)
    return torch.cat([d[:, :-1], *onehots, d[:, -1:]], 1)


class Read(Rescored):
    def full_sort_predict(self, interaction):
        seq, lengths = interaction[self.model.ITEM_SEQ], interaction[self.model.ITEM_SEQ_LEN]
        h = self.model.forward(seq, lengths)
        last = (lengths - 1).unsqueeze(1)
        items = [lagged(seq, last, 0).squeeze(1), lagged(seq, last, 1).squeeze(1)]
        return (1 + self.w) * (design(h, items)[:, self.keep] @ self.scores) - self.null


eval_data = ck.split_data("valid")
rd = Read(model)
base = {}
for name, parts in (("h+phi+last", [torch.arange(E), at[0]]), ("h+phi+last+second", [torch.arange(E), at[0], at[1]])):
    keep = torch.cat(parts + [torch.tensor([size - 1])])
    t0 = time.time()
    sol = ridge_solution(G[keep][:, keep], S[:, keep].T @ codes, 1.0)
    rd.keep, rd.scores = keep, (sol @ codes.T).float()
    for weight in (0.0, w):
        rd.w, rd.null = weight, weight * (mean_row[keep][None] @ rd.scores)
        with torch.no_grad():
            vals, per = ck.user_metrics(eval_data, ["ndcg@10", "hit@10"], rescored=rd)
        base.setdefault(weight, per)
        print(f"{name} w {weight:g}: valid ndcg@10 {vals['ndcg@10']} hit@10 {vals['hit@10']} paired vs first "
              f"{paired_difference(per['ndcg@10'], base[weight]['ndcg@10'])} ({time.time() - t0:.0f}s)", flush=True)
