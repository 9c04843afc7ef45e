"""Exploration (2026-12-03): which code table should the refit's read of a checkpoint's frozen h go into?

The read is the ridge least squares of a target's code from [h, relu(h R / s + b), 1] over every training target
(as ``explore_random_features.py`` beside ``refit-features/``: R ~ N(0, 1/H), b ~ N(0, 1/4), s h's mean coordinate
spread, ridge 1 unshrunk bias), ranked on valid by the dot product with the same table, unguided (w = 0) and guided
as the model reads it, (1 + w) read(h) - w read(mean h) (``refit_code_size``'s read, x_T not read). One
gram serves every table and every F (the affine and F-feature grams are its blocks), and the right-hand side of
every table comes from the per-item sums of the rows (``sums[i] = sum of the rows whose target is i``, then
``sums^T codes``), so each further table costs one solve. Tables: the model's own codes, and the training data's
SVD codes (``item_init.svd_item_codes``, as ``code_size`` builds them) of each given size; a size at or above the
number of items is the full-rank table, whose read is the least-squares fit of the target's one-hot vector up to
a rotation. "paired" is the mean per-user NDCG@10 difference from the own-codes read at the same F, with its
standard error.

    python benchmarks/results/ml-1m/wider-codes/explore_code_tables.py <checkpoint> <widths> <svd sizes> [<ridges> [<w>]]

e.g. ``... ~/.recbole_dreamrec/saved/DreamRec-....pth 0,4096 512,1024,2048,3124 1 0,32``.
"""
import sys, time, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from recbole_dreamrec.analysis.evaluation import Checkpoint, paired_difference, Rescored
from recbole_dreamrec.data import train_loader
from recbole_dreamrec.model.item_init import sequential_interaction_matrix
from recbole_dreamrec.model.refit import ridge_solution

torch.manual_seed(0)
model_file = sys.argv[1]
widths = [int(x) for x in sys.argv[2].split(",")]
sizes = [int(x) for x in sys.argv[3].split(",")] if len(sys.argv) > 3 and sys.argv[3] else []
ridges = [float(x) for x in sys.argv[4].split(",")] if len(sys.argv) > 4 else [1.0]
weights = [float(x) for x in sys.argv[5].split(",")] if len(sys.argv) > 5 else [0.0]
ck = Checkpoint(model_file)
model = ck.model.eval()
H, F = model.hidden_size, max(widths)
R = torch.randn(H, F) / H ** 0.5
bias = torch.randn(F) * 0.5
hs, ts = [], []
t0 = time.time()
with torch.no_grad():
    for batch in train_loader(ck.config, ck.train_data):
        h, target = model.training_targets(batch)
        hs.append(h.float()); ts.append(target)
hs, ts = torch.cat(hs), torch.cat(ts)
scale = hs.std(0).mean()
print("targets", tuple(hs.shape), f"{time.time()-t0:.0f}s", "h scale", float(scale), flush=True)


def feats(h, width):  # [h, phi_width(h), 1]: the first width features of the widest draw
    return torch.cat([h, torch.relu((h / scale) @ R[:, :width] + bias[:width]), torch.ones_like(h[:, :1])], 1)


t0 = time.time()
size = H + F + 1
gram = torch.zeros(size, size, dtype=torch.float64)
sums = torch.zeros(model.n_items, size, dtype=torch.float64)  # [n_items S]: the rows summed by their target
for s in range(0, len(hs), 32768):
    f = feats(hs[s:s + 32768], F).double()
    gram += f.T @ f
    sums.index_add_(0, ts[s:s + 32768], f)
print(f"gram F = {F}: {time.time()-t0:.0f}s", flush=True)

tables = {"own": model.codes.detach().double()}
matrix = sequential_interaction_matrix(ck.train_data.dataset, model)
for d in sizes:
    tables[f"svd{d}"] = model._svd_item_codes(matrix, d).double()
    print(f"codes svd{d}: {tuple(tables[f'svd{d}'].shape)}", flush=True)


class Read(Rescored):
    scores = None  # [S n_items]: the read folded into the table
    null = None  # [1 n_items]: w times the read of the mean h

    def full_sort_predict(self, interaction):
        h = self.model.forward(interaction[self.model.ITEM_SEQ], interaction[self.model.ITEM_SEQ_LEN])
        return (1 + self.w) * (feats(h, self.width) @ self.scores) - self.null


eval_data = ck.split_data("valid")
rd = Read(model)
for width in widths:
    keep = torch.cat([torch.arange(H + width), torch.tensor([size - 1])])  # h, the first width features, 1
    g, sw = gram[keep][:, keep], sums[:, keep]
    base = None
    for ridge in ridges:
        for name, codes in tables.items():
            t0 = time.time()
            sol = ridge_solution(g, sw.T @ codes, ridge)  # [S' D]
            rd.width, rd.scores = width, (sol @ codes.T).float()
            mean_h = (gram[-1, :H] / gram[-1, -1]).float()[None]  # [1 H]
            for w in weights:
                rd.w, rd.null = w, w * (feats(mean_h, width) @ rd.scores)
                vals, per = ck.user_metrics(eval_data, ["ndcg@10", "hit@10"], rescored=rd)
                if base is None:
                    base = per
                print(f"F {width} ridge {ridge} {name} w {w:g}: ndcg@10 {vals['ndcg@10']} hit@10 {vals['hit@10']} "
                      f"paired vs own {paired_difference(per['ndcg@10'], base['ndcg@10'])} ({time.time()-t0:.0f}s)", flush=True)
