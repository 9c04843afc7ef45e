"""How well can a table of item codes carry a distribution over items through a dot product?

DreamRec scores item i by ``e_i . x_0``, and its x0-prediction is trained with the mean squared error, whose best
answer is the mean of the target's code, ``sum_j p_j e_j`` for a next-item distribution p, read back as
``e_i . sum_j p_j e_j``. This module measures that readout under RecBole's own evaluator for exact codes (one
dimension per item), random N(0, 1) codes, SVD codes (``item_embedding_init: svd``) and a checkpoint's own item
embeddings, for one of two distributions:

* ``popularity``: the training popularity, the same p for every user;
* ``model``: each user's next-item distribution of a checkpoint trained with a softmax (SASRec, GRU4Rec, ...), the
  softmax of its full-sort scores. The exact codes give back that model's own ranking, so the rows say how much of
  a good model's quality a generator that reaches the conditional mean in that code table could keep at best.

Codes that lose the ranking in this readout limit any generator trained toward the conditional mean. (A model
trained with a softmax, such as SASRec, is not limited this way: its output vector is not a mean of codes.)
"""

import torch
from recbole.utils import get_trainer, init_seed

from recbole_dreamrec.checks import check_model_file
from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.evaluation import FixedScores, Rescored
from recbole_dreamrec.model.item_init import sequential_interaction_matrix, svd_item_codes
from recbole_dreamrec.quick_start import load_data_and_model
from recbole_dreamrec.reporting import markdown_table


def code_tables(model, config, train_dataset, dims, seed):
    """``(name, dim, [n_items dim] codes)``: exact, random N(0, 1) and SVD codes at each dim, and the model's own."""
    n_items = model.n_items
    matrix = sequential_interaction_matrix(train_dataset, model)
    tables = [("exact (one dimension per item)", n_items, torch.eye(n_items))]
    for dim in dims:
        generator = torch.Generator().manual_seed(seed)
        tables.append(("random N(0, 1)", dim, torch.randn(n_items, dim, generator=generator)))
        tables.append(("svd", dim, svd_item_codes(matrix, dim, 1.0, torch.Generator().manual_seed(seed))))
    embedding = getattr(model, "codes", getattr(getattr(model, "item_embedding", None), "weight", None))
    if embedding is not None:
        tables.append((f"{config['model']} checkpoint's item codes", embedding.shape[1], embedding))
    return tables


DISTRIBUTIONS = ("popularity", "model")


def readout_scores(codes, distribution):
    """Scores ``e_i . sum_j p_j e_j`` of every item under a ``[n_items dim]`` code table, for one distribution
    ``[n_items]`` (gives ``[n_items]``) or one per row ``[B n_items]`` (gives ``[B n_items]``)."""
    return (distribution @ codes) @ codes.T


class MeanCodeReadout(Rescored):
    """Each row scored by :func:`readout_scores` of the wrapped model's next-item distribution (the softmax of its
    full-sort scores over the real items, in float64; item 0 is RecBole's padding id) through ``codes`` (set them
    before evaluating)."""

    codes = None

    def full_sort_predict(self, interaction):
        logits = self.model.full_sort_predict(interaction).double()  # [B n_items]
        logits[:, 0] = float("-inf")
        p = torch.softmax(logits, dim=-1)  # [B n_items]
        return readout_scores(self.codes.to(p.device), p).float()  # [B n_items]


@torch.no_grad()
def code_readout(model_file, dims=(64, 256, 1024), seed=0, split="test", distribution="popularity"):
    """Metrics of ranking every user by ``e_i . sum_j p_j e_j`` on ``split``, once per code table
    (:func:`code_tables`), p the training popularity or the checkpoint's own next-item distribution (see the module).

    Returns:
        list[dict]: one row per code table: ``codes``, ``dim`` and the metrics.
    """
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"distribution must be one of {list(DISTRIBUTIONS)}, not {distribution!r}")
    if split not in ("valid", "test"):
        raise ConfigError(f"split must be 'valid' or 'test', not {split!r}")
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(check_model_file(model_file))
    model.eval()
    train_dataset = train_data.dataset
    if distribution == "popularity":
        targets = train_dataset.inter_feat[model.ITEM_ID]
        popularity = torch.bincount(targets, minlength=model.n_items).double()
        popularity /= popularity.sum()
        scored = FixedScores(model)
    else:
        scored = MeanCodeReadout(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, scored)
    rows = []
    for name, dim, codes in code_tables(model, config, train_dataset, dims, seed):
        codes = codes.detach().double().cpu()
        if distribution == "popularity":
            scored.scores = readout_scores(codes, popularity).float().to(config["device"])  # [n_items]
        else:
            scored.codes = codes
        init_seed(config["seed"], config["reproducibility"])
        result = trainer.evaluate(test_data if split == "test" else valid_data, load_best_model=False)
        rows.append({"codes": name, "dim": dim, **{k: float(v) for k, v in result.items()}})
    return rows


def format_readout(rows, metrics=("ndcg@10", "hit@10"), split="test"):
    header = ["codes", "dim"] + [f"{split} {m}" for m in metrics]
    return "\n".join(markdown_table(header, [[r["codes"], r["dim"]] + [f"{r[m]:.4f}" for m in metrics] for r in rows]))
