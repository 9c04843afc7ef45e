"""Exploration (2026-12-03): is the affine read of x_0 from a checkpoint's frozen h the limit? A ridge read of x_0
from [h, relu(h R / s + b), 1] (R ~ N(0, 1/H), b ~ N(0, 1/4), s h's mean coordinate spread) over every training
target, ranked unguided from x_T = 0 (no noise term) on valid; "vs affine" is the paired difference from the first
row (mean per-user NDCG@10 difference, its standard error).

    python benchmarks/results/ml-1m/refit-features/explore_random_features.py <checkpoint> <widths> <ridges> [<dim>]

(``<dim>``: read into and rank by the training data's SVD codes of that many dimensions instead of the model's own.)

e.g. ``... ~/.recbole_dreamrec/saved/DreamRec-Dec-03-2026_08-35-01.pth 0,2048 1,10``. What ``refit_features`` ships
is the same read inside the refit (with the x_T column and guidance): benchmarks/refit_checkpoint.py.
"""
import sys, time, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from recbole_dreamrec.analysis.evaluation import Checkpoint, paired_difference, Rescored
from recbole_dreamrec.data import train_loader
from recbole_dreamrec.model.refit import ridge_solution

torch.manual_seed(0)
model_file = sys.argv[1]
widths = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0, 2048, 4096]
ck = Checkpoint(model_file)
model = ck.model.eval()
H = model.hidden_size
R = torch.randn(H, max(widths)) / H ** 0.5
hs, ts = [], []
t0 = time.time()
with torch.no_grad():
    for batch in train_loader(ck.config, ck.train_data):
        h, target = model.training_targets(batch)
        hs.append(h.float()); ts.append(target)
hs, ts = torch.cat(hs), torch.cat(ts)
scale = hs.std(0).mean()
bias = torch.randn(max(widths)) * 0.5
print("targets", hs.shape, f"{time.time()-t0:.0f}s", "h scale", float(scale), flush=True)
codes = model.codes.detach()
if len(sys.argv) > 4:  # another code table to read into and rank by: SVD codes of this many dimensions (fixed)
    from recbole_dreamrec.model.item_init import sequential_interaction_matrix
    matrix = sequential_interaction_matrix(ck.train_data.dataset, model)
    codes = model._svd_item_codes(matrix, int(sys.argv[4])).float()
    print("codes: SVD", tuple(codes.shape), flush=True)

def feats(h, width):
    z = h / scale
    return torch.cat([h, torch.relu(z @ R[:, :width] + bias[:width]), torch.ones_like(h[:, :1])], 1) if width else torch.cat([h, torch.ones_like(h[:, :1])], 1)

class Read(Rescored):
    sol = None; width = 0
    def full_sort_predict(self, interaction):
        h = self.model.forward(interaction[self.model.ITEM_SEQ], interaction[self.model.ITEM_SEQ_LEN])
        return (feats(h, self.width) @ self.sol) @ codes.T

eval_data = ck.split_data("valid")
rd = Read(model)
base = None
ridges = [float(x) for x in sys.argv[3].split(",")] if len(sys.argv) > 3 else [1.0]
for width in widths:
    t0 = time.time()
    size = H + width + 1
    gram = torch.zeros(size, size, dtype=torch.float64); cross = torch.zeros(size, codes.shape[1], dtype=torch.float64)
    for s in range(0, len(hs), 65536):
        f = feats(hs[s:s+65536], width).double()
        gram += f.T @ f; cross += f.T @ codes[ts[s:s+65536]].double()
    print(f"gram {width}: {time.time()-t0:.0f}s", flush=True)
    for ridge in ridges:
        t0 = time.time()
        rd.sol, rd.width = ridge_solution(gram, cross, ridge).float(), width
        vals, per = ck.user_metrics(eval_data, ["ndcg@10", "hit@10"], rescored=rd)
        if base is None: base = per
        print(f"width {width} ridge {ridge}: ndcg@10 {vals['ndcg@10']} hit@10 {vals['hit@10']} vs affine {paired_difference(per['ndcg@10'], base['ndcg@10'])} ({time.time()-t0:.0f}s)", flush=True)
