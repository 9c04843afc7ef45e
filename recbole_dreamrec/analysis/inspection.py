"""Look inside a trained DreamRec: the generated oracle item of a user, and maps of the item-embedding space.

``inspect_users`` answers, for each user (or raw history): what the history was, which items DreamRec recommends
(with scores), how far the generated oracle embedding is from its nearest real item compared with the usual
distances between real items, and how stable the top-k is across several generations.
``embedding_map`` draws the item embeddings of one or more checkpoints side by side (t-SNE or PCA), coloured by
popularity, with DreamRec's oracle embeddings for a sample of users on top.
"""

import csv
import os
from pathlib import Path

import numpy as np
import torch

from recbole_dreamrec.checks import check_model_file
from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.quick_start import load_data_and_model
from recbole_dreamrec.reporting import new_figure


class Inspector:
    """A loaded checkpoint with the lookups the inspection needs."""

    def __init__(self, model_file):
        loaded = load_data_and_model(check_model_file(model_file))
        self.config, self.model, self.dataset, _, _, self.test_data = loaded
        self.model.eval()
        self.titles = read_titles(self.config)

    # ids and names ---------------------------------------------------------------------------------------------

    def item_tokens(self, ids):
        return [str(t) for t in self.dataset.id2token(self.dataset.iid_field, np.asarray(ids, dtype=np.int64))]

    def describe(self, ids):
        return [{"item": token, "title": self.titles.get(token)} for token in self.item_tokens(ids)]

    def user_history(self, user_token):
        """The user's history as the model sees it at test time, ``(item_seq [L], length)``."""
        try:
            uid = self.dataset.token2id(self.dataset.uid_field, str(user_token))
        except ValueError as error:
            raise ConfigError(f"unknown user {user_token!r} in dataset {self.config['dataset']!r}") from error
        inter = self.test_data._dataset.inter_feat
        rows = (inter[self.dataset.uid_field] == uid).nonzero().flatten()
        if len(rows) == 0:
            raise ConfigError(f"user {user_token!r} has no test interaction to take the history from")
        row = rows[-1]
        return inter[self.model.ITEM_SEQ][row], int(inter[self.model.ITEM_SEQ_LEN][row])

    def raw_history(self, item_tokens):
        """A history given as item tokens, padded to the model's length (the most recent items kept)."""
        try:
            ids = [int(self.dataset.token2id(self.dataset.iid_field, str(t))) for t in item_tokens]
        except ValueError as error:
            raise ConfigError(f"unknown item in history {list(item_tokens)}: {error}") from error
        if not ids:
            raise ConfigError("a history needs at least one item")
        ids = ids[-self.model.max_seq_length:]
        item_seq = torch.zeros(self.model.max_seq_length, dtype=torch.long)
        item_seq[: len(ids)] = torch.tensor(ids)
        return item_seq, len(ids)

    # the oracle ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def oracles(self, item_seq, length, samples, seed):
        """``samples`` oracle embeddings for one history, ``[S H]``; sample 0 is what the evaluation generates."""
        device = self.real_items().device
        seqs = item_seq.to(device).unsqueeze(0)
        lengths = torch.tensor([length], device=device)
        out = []
        for s in range(samples):
            out.append(self.model.generate(seqs, lengths, seed=seed + s)[0])
        return torch.stack(out)

    def item_codes(self):
        """The codes the model ranks items by, ``[n_items D]``: DreamRec's ``ranking_codes`` (its codes, or the table
        a refit reads into), another model's item embeddings."""
        model = self.model
        codes = model.ranking_codes if hasattr(model, "ranking_codes") else model.item_embedding.weight
        return codes.detach()

    def real_items(self):
        return self.item_codes()[1:]  # [n_items-1 D], padding row left out

    def typical_distances(self, max_items=2000, seed=0):
        """Median distance between two real items, and median distance from a real item to its nearest other one."""
        items = self.real_items()
        if len(items) > max_items:
            generator = torch.Generator().manual_seed(seed)
            items = items[torch.randperm(len(items), generator=generator)[:max_items]]
        dist = torch.cdist(items, items)  # [N N]
        diagonal = torch.eye(len(items), dtype=torch.bool, device=dist.device)
        off_diagonal = dist[~diagonal]
        nearest = dist.masked_fill(diagonal, float("inf")).min(dim=1).values
        return {"median_pairwise": off_diagonal.median().item(), "median_nearest_neighbour": nearest.median().item()}


def nearest_items(oracle, items, k=1):
    """Indices and L2 distances of the ``k`` items nearest to ``oracle`` ``[H]`` among ``items`` ``[N H]``."""
    distances = torch.cdist(oracle.unsqueeze(0), items).squeeze(0)  # [N]
    values, indices = distances.topk(k, largest=False)
    return indices, values


def read_titles(config):
    """``item token -> title`` from the dataset's ``.item`` file (a column named like ``*title*``), if any."""
    path = Path(config["data_path"]) / f"{config['dataset']}.item"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter=config["field_separator"] or "\t")
        header = [h.split(":")[0] for h in next(reader)]
        title_columns = [i for i, h in enumerate(header) if "title" in h.lower()]
        if not title_columns or header[0] != config["ITEM_ID_FIELD"]:
            return {}
        return {row[0]: row[title_columns[0]] for row in reader if len(row) > title_columns[0]}


def inspect_users(model_file, users=(), history=None, topk=10, samples=5, seed=None, exclude_history=True):
    """Inspect the oracle of each user (external ids) and/or of a raw history (item tokens).

    Returns:
        dict: ``typical_distances`` and one entry per user/history in ``results``, each with ``history``,
        ``recommendations`` (rank, item, title, score; from sample 0, the evaluation's own generation),
        ``oracle`` (norm, nearest real item and its distance, the distance relative to the typical ones) and
        ``stability`` across ``samples`` generations (mean pairwise top-k overlap, items in every top-k).
    """
    inspector = Inspector(model_file)
    seed = inspector.config["seed"] if seed is None else seed
    typical = inspector.typical_distances()
    targets = [("user", u, inspector.user_history(u)) for u in users]
    if history:
        targets.append(("given_history", list(history), inspector.raw_history(history)))
    items = inspector.real_items()
    results = []
    for kind, key, (item_seq, length) in targets:
        oracles = inspector.oracles(item_seq, length, samples, seed)  # [S H]
        scores = oracles @ inspector.item_codes().T  # [S n_items]
        scores[:, 0] = -np.inf
        if exclude_history:
            scores[:, item_seq[:length].to(scores.device)] = -np.inf
        top = scores.topk(topk, dim=1)
        nearest_index, nearest_distance = nearest_items(oracles[0], items)
        nearest_id = int(nearest_index[0]) + 1  # items excludes the padding row 0
        top_sets = [set(row.tolist()) for row in top.indices]
        overlaps = [len(a & b) / topk for i, a in enumerate(top_sets) for b in top_sets[i + 1:]]
        always = set.intersection(*top_sets)
        results.append({
            kind: key,
            "history": inspector.describe(item_seq[:length].tolist()),
            "recommendations": [
                {"rank": r + 1, **inspector.describe([i])[0], "score": float(s)}
                for r, (i, s) in enumerate(zip(top.indices[0].tolist(), top.values[0].tolist()))
            ],
            "oracle": {
                "norm": float(oracles[0].norm()),
                "nearest_item": inspector.describe([nearest_id])[0],
                "nearest_distance": float(nearest_distance[0]),
                "distance_over_median_pairwise": float(nearest_distance[0]) / typical["median_pairwise"],
                "distance_over_median_nearest_neighbour": float(nearest_distance[0])
                / typical["median_nearest_neighbour"],
            },
            "stability": {
                "samples": samples,
                "mean_topk_overlap": float(np.mean(overlaps)) if overlaps else 1.0,
                "in_every_topk": inspector.describe(sorted(always)),
            },
        })
    return {
        "model_file": str(model_file),
        "dataset": inspector.config["dataset"],
        "sampler": inspector.config["sampler"],
        "guidance_weight": inspector.config["guidance_weight"],
        "typical_distances": typical,
        "results": results,
    }


def format_text(report):
    """The report of :func:`inspect_users` as readable text."""
    lines = [
        f"{report['dataset']}: sampler {report['sampler']}, w = {report['guidance_weight']}",
        "typical distances between real items: median {median_pairwise:.3f}, median to nearest neighbour "
        "{median_nearest_neighbour:.3f}".format(**report["typical_distances"]),
    ]
    name = lambda d: f"{d['item']}" + (f" ({d['title']})" if d.get("title") else "")  # noqa: E731
    for r in report["results"]:
        who = f"user {r['user']}" if "user" in r else "given history " + " ".join(r["given_history"])
        shown = r["history"][-10:]
        lines += ["", who, f"  history ({len(r['history'])} items, last {len(shown)}): " + "; ".join(name(d) for d in shown)]
        lines += ["  top-k:"] + [f"   {x['rank']:>2}. {name(x)}  score {x['score']:.3f}" for x in r["recommendations"]]
        o = r["oracle"]
        lines.append(
            f"  oracle: norm {o['norm']:.3f}; nearest real item {name(o['nearest_item'])} at {o['nearest_distance']:.3f}"
            f" ({o['distance_over_median_pairwise']:.2f}x the median pairwise distance,"
            f" {o['distance_over_median_nearest_neighbour']:.2f}x the median nearest-neighbour distance)"
        )
        s = r["stability"]
        lines.append(
            f"  stability over {s['samples']} samples: mean top-k overlap {s['mean_topk_overlap']:.2f}; in every top-k: "
            + ("; ".join(name(d) for d in s["in_every_topk"]) or "none")
        )
    return "\n".join(lines)


def item_popularity(dataset):
    """Interaction count of every item id in the dataset, ``[n_items]``."""
    counts = np.bincount(dataset.inter_feat[dataset.iid_field].numpy(), minlength=dataset.item_num)
    return counts


def embedding_map(model_files, out_png, users=100, method="tsne", seed=0):
    """Side-by-side 2-D maps of the item embeddings of ``model_files``, coloured by popularity, with the oracle
    embeddings of ``users`` test users overlaid for DreamRec checkpoints.

    Returns:
        list[dict]: per checkpoint, the model name and the 2-D coordinates of items and oracles.
    """
    fig = new_figure()  # before the checkpoints load: a missing matplotlib is reported at once
    panels = []
    for model_file in model_files:
        inspector = Inspector(model_file)
        items = inspector.real_items().cpu().numpy()
        popularity = item_popularity(inspector.dataset)[1:]
        oracles = np.zeros((0, items.shape[1]), dtype=items.dtype)
        if hasattr(inspector.model, "generate"):
            inter = inspector.test_data._dataset.inter_feat
            n = min(users, len(inter))
            rows = torch.randperm(len(inter), generator=torch.Generator().manual_seed(seed))[:n]
            device = inspector.real_items().device
            oracles = inspector.model.generate(inter[inspector.model.ITEM_SEQ][rows].to(device),
                                               inter[inspector.model.ITEM_SEQ_LEN][rows].to(device)).cpu().numpy()
        points = project(np.concatenate([items, oracles]), method, seed)
        panels.append({"model": inspector.config["model"], "items": points[: len(items)],
                       "oracles": points[len(items):], "popularity": popularity})

    fig.set_size_inches(5 * len(panels), 4.5)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        sc = ax.scatter(*panel["items"].T, c=np.log1p(panel["popularity"]), s=4, cmap="viridis")
        if len(panel["oracles"]):
            ax.scatter(*panel["oracles"].T, marker="x", c="red", s=14, label="generated oracles")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"{panel['model']} item embeddings ({method})")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(sc, ax=ax, label="log(1 + interactions)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=120)
    return panels


def project(points, method, seed):
    """2-D coordinates of ``points`` by ``tsne`` (scikit-learn) or ``pca``."""
    if method == "pca":
        centered = points - points.mean(axis=0)
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        return centered @ vt[:2].T
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(2.0, (len(points) - 1) / 3))
        return TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(points)
    raise ConfigError(f"method must be one of ['tsne', 'pca'], got {method!r}")
