"""Exploration (2026-12-03): does the encoder's h get better when it is trained against the full-rank table?

The shipped ml-1m model reads its frozen h into the training data's SVD codes at full rank (``refit_code_size``);
what is left of the gap to GRU4Rec is h itself, which the denoising MSE trained toward the model's own 512-d codes.
Here a trained checkpoint's encoder is trained further for a few epochs by the same kind of objective, the x0 MSE at
the last diffusion step, but into the full-rank table: the loss is ``||[h, 1] W - codes[target]||^2 / N`` over every
training target (windows, as the model trains), W starting from the ridge least-squares read of the frozen h. No
negatives; the denoiser and the model's own codes are not used.

After every epoch the encoder is read again by the ridge least squares into the same table (affine, F = 0) and
ranked on valid, unguided (w = 0) and guided as the model reads (w), against the read of the checkpoint's own h
("paired": the mean per-user NDCG@10 difference, with its standard error). The last encoder is saved, for
``wider-codes/explore_code_tables.py`` to read with the random features (F = 4,096) as the shipped refit does.

    python benchmarks/results/ml-1m/table-finetune/explore_table_finetune.py <checkpoint> <epochs> <lr> <out.pth> [<w>]
"""
import sys, time, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from recbole_dreamrec.analysis.evaluation import Checkpoint, paired_difference, Rescored
from recbole_dreamrec.data import train_loader
from recbole_dreamrec.model.item_init import sequential_interaction_matrix
from recbole_dreamrec.model.refit import ridge_solution

model_file, epochs, lr, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
w = float(sys.argv[5]) if len(sys.argv) > 5 else 32.0
ck = Checkpoint(model_file)
model = ck.model
torch.manual_seed(ck.config["seed"])
matrix = sequential_interaction_matrix(ck.train_data.dataset, model)
codes = model._svd_item_codes(matrix, model.n_items)  # [n_items N]: the full-rank table
N, H = codes.shape[1], model.hidden_size
print("table", tuple(codes.shape), flush=True)
loader = train_loader(ck.config, ck.train_data)
eval_data = ck.split_data("valid")


def affine(h):
    return torch.cat([h, torch.ones_like(h[:, :1])], 1)  # [M H+1]


def ridge_read():
    """The ridge read of the encoder's h as it is now: W [H+1 N] and the mean h."""
    model.eval()
    gram = torch.zeros(H + 1, H + 1, dtype=torch.float64)
    sums = torch.zeros(model.n_items, H + 1, dtype=torch.float64)
    with torch.no_grad():
        for batch in loader:
            h, target = model.training_targets(batch)
            f = affine(h).double()
            gram += f.T @ f
            sums.index_add_(0, target, f)
    return ridge_solution(gram, sums.T @ codes.double(), 1.0).float(), (gram[-1, :H] / gram[-1, -1]).float()


class Read(Rescored):
    def full_sort_predict(self, interaction):
        h = self.model.forward(interaction[self.model.ITEM_SEQ], interaction[self.model.ITEM_SEQ_LEN])
        return (1 + self.w) * (affine(h) @ self.scores) - self.null


rd = Read(model)
base = {}


def evaluate(tag, W, mean_h):
    model.eval()
    rd.scores = W @ codes.T  # [H+1 n_items]
    for weight in (0.0, w):
        rd.w, rd.null = weight, weight * (affine(mean_h[None]) @ rd.scores)
        with torch.no_grad():
            vals, per = ck.user_metrics(eval_data, ["ndcg@10", "hit@10"], rescored=rd)
        base.setdefault(weight, per)
        print(f"{tag} w {weight:g}: valid ndcg@10 {vals['ndcg@10']} hit@10 {vals['hit@10']} paired vs start "
              f"{paired_difference(per['ndcg@10'], base[weight]['ndcg@10'])}", flush=True)


t0 = time.time()
W, mean_h = ridge_read()
print(f"ridge read {time.time() - t0:.0f}s", flush=True)
evaluate("start, ridge", W, mean_h)
W = torch.nn.Parameter(W.clone())
encoder = [p for n, p in model.named_parameters() if not n.startswith(("denoiser", "null_guidance", "item_codes", "table_read"))]
optimizer = torch.optim.Adam(encoder + [W], lr=lr)
for epoch in range(epochs):
    model.train()
    t0, total, count = time.time(), 0.0, 0
    for batch in loader:
        h, target = model.training_targets(batch)  # [M H], [M]
        loss = ((affine(h) @ W - codes[target]) ** 2).sum(1).mean() / N
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, count = total + loss.item() * len(target), count + len(target)
    print(f"epoch {epoch}: loss {total / count:.4f} {time.time() - t0:.0f}s", flush=True)
    W_ridge, mean_h = ridge_read()
    evaluate(f"epoch {epoch}, trained W", W.detach(), mean_h)
    evaluate(f"epoch {epoch}, ridge", W_ridge, mean_h)
ck.save(out)
print("saved", out, flush=True)
