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

Two refinements bring the readout closer to what DreamRec computes (``model`` distribution only):

* ``guidance_weight`` w reads ``(1 + w) m_p - w m_pop`` instead of the mean code m_p, m_pop being the mean code of
  the training popularity (what the unconditional model aims at), as classifier-free guidance combines the two;
* ``oracle_ranks`` adds, for each SVD table, rows whose mean codes are first replaced by their best rank-r affine
  approximation over the evaluated users (the mean of the mean codes plus their top-r centred principal
  directions). With the single-linear-layer denoiser (``mlp1``) the guidance vector h enters x_0 through a D x H
  matrix, so one x0-prediction from noise is an affine function of an H-dimensional vector: these rows say what
  D-dimensional codes can give such an oracle with H = r. The directions are fitted on the evaluated users' own
  mean codes (least squares, what an MSE-trained oracle aims at), a reading of the ceiling, not a method.
"""

import torch

from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.evaluation import Checkpoint, FixedScores, Rescored, check_split
from recbole_dreamrec.model.item_init import sequential_interaction_matrix, svd_item_codes
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


def rank_r_affine(points, rank):
    """``(center [dim], directions [dim rank])``: the best rank-``rank`` affine approximation of the rows of
    ``points`` ``[n dim]`` in squared error, ``center + (x - center) @ directions @ directions.T`` (the mean and the
    top principal directions)."""
    center = points.mean(dim=0)  # [dim]
    _, _, vt = torch.linalg.svd(points - center, full_matrices=False)
    return center, vt[:rank].T  # [dim], [dim rank]


class MeanCodeReadout(Rescored):
    """Each row scored through ``codes`` (set them before evaluating) by the mean code m_p of the wrapped model's
    next-item distribution p (the softmax of its full-sort scores over the real items, in float64; item 0 is
    RecBole's padding id): ``codes @ m_p`` as :func:`readout_scores`, or with the module's refinements:

    * ``affine``: ``(center, directions)`` of :func:`rank_r_affine`; m_p is replaced by its approximation;
    * ``guidance_weight`` w with ``null_code`` m_pop: scores ``codes @ ((1 + w) m_p - w m_pop)``;
    * ``collected``: a list; each batch's (unapproximated) mean codes ``[B dim]`` are appended to it.
    """

    codes = None
    affine = None
    guidance_weight = 0.0
    null_code = None
    collected = None

    def full_sort_predict(self, interaction):
        logits = self.model.full_sort_predict(interaction).double()  # [B n_items]
        logits[:, 0] = float("-inf")
        p = torch.softmax(logits, dim=-1)  # [B n_items]
        codes = self.codes.to(p.device)
        mean_code = p @ codes  # [B dim]
        if self.collected is not None:
            self.collected.append(mean_code.cpu())
        if self.affine is not None:
            center, directions = (x.to(p.device) for x in self.affine)
            mean_code = center + (mean_code - center) @ directions @ directions.T  # [B dim]
        if self.guidance_weight:
            mean_code = (1.0 + self.guidance_weight) * mean_code - self.guidance_weight * self.null_code.to(p.device)
        return (mean_code @ codes.T).float()  # [B n_items]


@torch.no_grad()
def code_readout(model_file, dims=(64, 256, 1024), seed=0, split="test", distribution="popularity",
                 guidance_weight=0.0, oracle_ranks=()):
    """Metrics of ranking every user by ``e_i . sum_j p_j e_j`` on ``split``, once per code table
    (:func:`code_tables`), p the training popularity or the checkpoint's own next-item distribution (see the module).

    With ``distribution="model"``: ``guidance_weight`` w reads ``(1 + w) m_p - w m_pop`` (every row), and each rank r
    of ``oracle_ranks`` below an SVD table's dim adds a row for that table with rank-r affine mean codes (see the
    module).

    Returns:
        list[dict]: one row per code table: ``codes``, ``dim``, ``rank`` (``None``: not approximated) and the
        metrics.
    """
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"distribution must be one of {list(DISTRIBUTIONS)}, not {distribution!r}")
    check_split(split)  # before the minute-long load
    if distribution != "model" and (guidance_weight or oracle_ranks):
        raise ConfigError("guidance_weight and oracle_ranks read a model's distribution: use distribution='model'")
    if any(int(r) < 1 for r in oracle_ranks):
        raise ConfigError(f"oracle ranks must be >= 1, got {list(oracle_ranks)}")
    checkpoint = Checkpoint(model_file)
    config, model, train_dataset = checkpoint.config, checkpoint.model, checkpoint.train_data.dataset
    eval_data = checkpoint.split_data(split)
    popularity = training_popularity(train_dataset, model)  # [n_items]
    if distribution == "popularity":
        scored = FixedScores(model)
    else:
        scored = MeanCodeReadout(model)
        scored.guidance_weight = float(guidance_weight)
    rows = []
    for name, dim, codes in code_tables(model, config, train_dataset, dims, seed):
        codes = codes.detach().double().cpu()
        if distribution == "popularity":
            scored.scores = readout_scores(codes, popularity).float().to(config["device"])  # [n_items]
            rows.append({"codes": name, "dim": dim, "rank": None, **checkpoint.metrics(eval_data, rescored=scored)})
            continue
        ranks = sorted({int(r) for r in oracle_ranks if int(r) < dim}) if name == "svd" else []
        scored.codes, scored.null_code, scored.affine = codes, popularity @ codes, None  # m_pop: [dim]
        scored.collected = [] if ranks else None
        rows.append({"codes": name, "dim": dim, "rank": None, **checkpoint.metrics(eval_data, rescored=scored)})
        mean_codes = torch.cat(scored.collected) if ranks else None  # [users dim]
        scored.collected = None
        for rank in ranks:
            scored.affine = rank_r_affine(mean_codes, rank)
            rows.append({"codes": name, "dim": dim, "rank": rank, **checkpoint.metrics(eval_data, rescored=scored)})
        scored.affine = None
    return rows


def training_popularity(train_dataset, model):
    """``[n_items]`` float64: the share of each item among the training rows' targets."""
    targets = train_dataset.inter_feat[model.ITEM_ID]
    popularity = torch.bincount(targets, minlength=model.n_items).double()
    return popularity / popularity.sum()


def format_readout(rows, metrics=("ndcg@10", "hit@10"), split="test"):
    """Markdown table of :func:`code_readout`'s rows (a ``rank`` column when some row has one)."""
    ranked = any(r.get("rank") is not None for r in rows)
    header = ["codes", "dim"] + (["oracle rank"] if ranked else []) + [f"{split} {m}" for m in metrics]
    body = [
        [r["codes"], r["dim"]] + ([r.get("rank") or "full"] if ranked else []) + [f"{r[m]:.4f}" for m in metrics]
        for r in rows
    ]
    return "\n".join(markdown_table(header, body))
