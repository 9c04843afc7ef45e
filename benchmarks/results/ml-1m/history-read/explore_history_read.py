"""Exploration (2026-12-03): does the refit's read gain from the history's last item, read beside h?

The shipped ml-1m refit reads the target's full-rank SVD code from h alone (and h's random features). GRU4Rec, the
strongest model on ml-1m, leans on short-range order; if h carries the last item only blurred, a read that also sees
the last item itself could recover it. Here the ridge least squares (ridge 1, bias unshrunk) of the target's code
in the full-rank table reads, over every training target, blocks of:

- ``h``: the encoder's guidance vector (H);
- ``e``: the model's own embedding of the history's last item (H);
- ``onehot``: the last item's one-hot vector (n_items; a first-order transition read, as in FPMC's MC part);
- ``phi``: with F > 0, F random ReLU features of h, drawn as ``wider-codes/explore_code_tables.py`` draws them
  (R ~ N(0, 1/H), b ~ N(0, 1/4), s h's mean coordinate spread; the shipped refit's kind of read).

One gram over [h, phi, e, onehot, 1] serves every subset (its one-hot blocks summed per last item, not multiplied);
each read is ranked on valid unguided (w = 0) and guided as the model reads, (1 + w) read(x) - w read(mean x).
"paired" is the mean per-user NDCG@10 difference from the first read listed (h alone, or h and phi with F > 0).

    python benchmarks/results/ml-1m/history-read/explore_history_read.py <checkpoint> [<w> [<F>]]
"""
import sys, time, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # refit_exploration
from recbole_dreamrec.analysis.evaluation import paired_difference, Rescored
from recbole_dreamrec.data import WINDOW_TARGETS_FIELD, train_loader
from recbole_dreamrec.model.dreamrec import window_positions
from recbole_dreamrec.model.refit import ridge_solution
from refit_exploration import load

model_file = sys.argv[1]
w = float(sys.argv[2]) if len(sys.argv) > 2 else 32.0
F = int(sys.argv[3]) if len(sys.argv) > 3 else 0
ck, model, H, n, codes, R, bias = load(model_file, F)
scale = None
E = 2 * H + F  # the dense blocks [h phi e], then the one-hot block, then the bias
blocks = {"h": torch.arange(H), "phi": torch.arange(H, H + F), "e": torch.arange(H + F, E),
          "onehot": torch.arange(E, E + n)}
size = E + n + 1


def dense(h, last):  # [M E]: h, phi(h), e(last)
    return torch.cat([h, torch.relu((h / scale) @ R + bias), model.item_embedding.weight[last]], 1)


def design(h, last):  # [M S]
    onehot = torch.zeros(len(last), n)
    onehot[torch.arange(len(last)), last] = 1.0
    return torch.cat([dense(h, last), onehot, torch.ones_like(h[:, :1])], 1)


t0 = time.time()
gram = torch.zeros(size, size, dtype=torch.float64)
sums = torch.zeros(n, size, dtype=torch.float64)
ones = torch.ones(1, dtype=torch.float64)
keep = torch.cat([torch.arange(E), torch.tensor([size - 1])])  # the dense columns and the bias
onehot_at = torch.arange(E, E + n)
with torch.no_grad():
    for batch in train_loader(ck.config, ck.train_data):
        item_seq, item_seq_len = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
        positions, counts = window_positions(item_seq_len, batch[WINDOW_TARGETS_FIELD])  # [B C]
        h, target = model.training_targets(batch)  # [M H], [M]
        last = item_seq.gather(1, positions)[counts]  # [M]: the item at each loss position, its history's last
        if scale is None:
            scale = h.std(0).mean()
        d = torch.cat([dense(h, last).double(), ones.expand(len(h), 1)], 1)  # [M E+1]: the dense part and the bias
        gram[keep[:, None], keep] += d.T @ d
        by_last = torch.zeros(n, E + 1, dtype=torch.float64).index_add_(0, last, d)  # [n E+1]: rows summed per last item
        gram[E:E + n, keep] += by_last
        gram[keep, E:E + n] += by_last.T
        gram[onehot_at, onehot_at] += torch.bincount(last, minlength=n).double()
        sums[:, keep] += torch.zeros(n, E + 1, dtype=torch.float64).index_add_(0, target, d)
        sums[:, E:E + n].index_put_((target, last), torch.ones(len(target), dtype=torch.float64), accumulate=True)
print(f"gram {tuple(gram.shape)}: {time.time() - t0:.0f}s", flush=True)
mean_row = (gram[-1] / gram[-1, -1]).float()  # [S]: the mean design row


class Read(Rescored):
    def full_sort_predict(self, interaction):
        item_seq, item_seq_len = interaction[self.model.ITEM_SEQ], interaction[self.model.ITEM_SEQ_LEN]
        h = self.model.forward(item_seq, item_seq_len)
        last = item_seq.gather(1, (item_seq_len - 1).unsqueeze(1)).squeeze(1)
        return (1 + self.w) * (design(h, last)[:, self.keep] @ self.scores) - self.null


eval_data = ck.split_data("valid")
rd = Read(model)
base = {}
variants = ((["h"], ["h", "e"], ["h", "onehot"], ["h", "onehot", "e"], ["onehot"]) if not F else
            (["h", "phi"], ["h", "phi", "onehot"], ["h", "phi", "onehot", "e"]))
for names in variants:
    keep = torch.cat([blocks[b] for b in names] + [torch.tensor([size - 1])])
    t0 = time.time()
    sol = ridge_solution(gram[keep][:, keep], sums[:, keep].T @ codes, 1.0)  # [S' N]
    rd.keep, rd.scores = keep, (sol @ codes.T).float()
    for weight in (0.0, w):
        rd.w, rd.null = weight, weight * (mean_row[keep][None] @ rd.scores)
        with torch.no_grad():
            vals, per = ck.user_metrics(eval_data, ["ndcg@10", "hit@10"], rescored=rd)
        base.setdefault(weight, per)
        print(f"{'+'.join(names)} w {weight:g}: valid ndcg@10 {vals['ndcg@10']} hit@10 {vals['hit@10']} paired vs first "
              f"{paired_difference(per['ndcg@10'], base[weight]['ndcg@10'])} ({time.time() - t0:.0f}s)", flush=True)
