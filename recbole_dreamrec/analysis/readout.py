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

Refinements, closer to what DreamRec computes or beyond it (``model`` distribution only):

* ``guidance_weight`` w reads ``(1 + w) m_p - w m_pop`` instead of the mean code m_p, m_pop being the mean code of
  the training popularity (what the unconditional model aims at), as classifier-free guidance combines the two;
* ``oracle_ranks`` adds, for each SVD table, rows whose mean codes are first replaced by their best rank-r affine
  approximation over the evaluated users (the mean of the mean codes plus their top-r centred principal
  directions). With the single-linear-layer denoiser (``mlp1``) the guidance vector h enters x_0 through a D x H
  matrix, so one x0-prediction from noise is an affine function of an H-dimensional vector: these rows say what
  D-dimensional codes can give such an oracle with H = r. The directions are fitted on the evaluated users' own
  mean codes (least squares, what an MSE-trained oracle aims at), a reading of the ceiling, not a method;
* ``decode="maxent"`` ranks by ``e_i . lam`` instead of ``e_i . m``, where lam are the natural parameters of the
  maximum-entropy distribution with that mean code, ``q_j ∝ exp(e_j . lam)`` and ``sum_j q_j e_j = m``
  (:func:`natural_parameters`): the exact inverse of the mean map of the exponential family that the codes span,
  where the dot product is its linearisation about the uniform distribution. ``noise_levels`` add rows (SVD tables)
  whose mean codes are perturbed first, to measure how much an estimated mean code keeps of that decoding.

:func:`oracle_decoding` applies the same two decodings to a DreamRec checkpoint's own oracles: the generated one
(what the model ranks by) or the one-step oracle, the x0-prediction from x_T = 0 at the last step, which an
MSE-trained (``diffusion_loss_type: l2``) model aims at the conditional mean code E[e_next | h]; and to the
least-squares oracle, the best affine read of x_0 from the checkpoint's own (frozen) h over its training targets
(:func:`least_squares_read`), against which the trained denoiser's read of the same h can be measured.
"""

import time

import torch

from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.analysis.evaluation import (Checkpoint, FixedScores, Rescored, apply_inference_setting, check_split,
                                         paired_difference)
from recbole_dreamrec.model.item_init import sequential_interaction_matrix, svd_item_codes
from recbole_dreamrec.model.refit import ridge_solution
from recbole_dreamrec.model.samplers import classifier_free_guidance
from recbole_dreamrec.reporting import markdown_table


EXACT = "exact (one dimension per item)"


def code_tables(model, config, train_dataset, dims, seed):
    """``(name, dim, [n_items dim] codes)``: exact, random N(0, 1) and SVD codes at each dim, and the model's own."""
    n_items = model.n_items
    matrix = sequential_interaction_matrix(train_dataset, model)
    tables = [(EXACT, n_items, torch.eye(n_items))]
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


def _real_item_logits(lam, codes):
    """``e_j . lam`` for every item, ``[B n_items]``, with item 0 (the padding id) at ``-inf``."""
    logits = lam @ codes.T
    logits[:, 0] = float("-inf")
    return logits


def _maxent_objective(lam, codes, mean, ridge):
    """The convex dual of maximum entropy with mean ``mean``: ``log sum_j exp(e_j . lam) - lam . mean`` plus
    ``ridge / 2 |lam|^2``, per row ``[B]`` (item 0, the padding id, is left out of the sum)."""
    return torch.logsumexp(_real_item_logits(lam, codes), dim=-1) - (lam * mean).sum(dim=-1) + 0.5 * ridge * lam.pow(2).sum(dim=-1)


def natural_parameters(mean, codes, ridge=1e-3, iters=30, tol=1e-6, chunk_floats=2**22, outer_floats=2**25):
    """``[B dim]`` natural parameters lam of the maximum-entropy distributions ``q_j ∝ exp(e_j . lam)`` over the
    real items whose mean codes ``sum_j q_j e_j`` are the rows of ``mean`` ``[B dim]``, ``codes`` ``[n_items dim]``
    (float64; item 0 is RecBole's padding id and left out).

    Minimises the dual of maximum entropy, ``A(lam) - lam . m + ridge / 2 |lam|^2`` with ``A`` the log-partition,
    by Newton's method (gradient ``E_q[e] - m + ridge lam``, Hessian ``Cov_q[e] + ridge I``) with backtracking per
    row; a row stops when its gradient norm is below ``tol`` (the others go on), every row after ``iters`` steps.
    A mean code outside the convex hull of the codes has no maximum-entropy distribution: the ridge keeps lam finite
    there. Rows are solved in chunks of at most ``chunk_floats`` Hessian entries. The Hessians' second moments
    ``E_q[e e^T]`` are one matrix product of the rows' ``q`` with the table of the items' outer products ``e_j e_j^T``
    ``[n_items dim*dim]``, built once (in blocks of items where it would hold more than ``outer_floats`` entries).
    """
    dim = codes.shape[1]
    step_rows = max(1, chunk_floats // (dim * dim))
    outer = _outer_products(codes) if codes.shape[0] * dim * dim <= outer_floats else None
    return torch.cat([_newton(part, codes, ridge, iters, tol, outer) for part in mean.split(step_rows)])


def _outer_products(codes):
    """``[n dim*dim]``: row j is ``e_j e_j^T`` flattened."""
    return (codes.unsqueeze(2) * codes.unsqueeze(1)).reshape(codes.shape[0], -1)


def _second_moments(q, codes, outer, block=4096):
    """``[A dim dim]``: ``sum_j q_aj e_j e_j^T`` for the rows of ``q`` ``[A n_items]``."""
    dim = codes.shape[1]
    if outer is not None:
        return (q @ outer).view(-1, dim, dim)
    moments = q.new_zeros(q.shape[0], dim * dim)
    for start in range(0, codes.shape[0], block):
        moments += q[:, start:start + block] @ _outer_products(codes[start:start + block])
    return moments.view(-1, dim, dim)


def _newton(mean, codes, ridge, iters, tol, outer=None):
    rows, dim = mean.shape
    lam = torch.zeros(rows, dim, dtype=codes.dtype, device=codes.device)
    value = _maxent_objective(lam, codes, mean, ridge)  # [B]
    eye = torch.eye(dim, dtype=codes.dtype, device=codes.device)
    active = torch.arange(rows, device=codes.device)  # rows not yet converged: only these take further steps
    for _ in range(iters):
        lam_a, mean_a = lam[active], mean[active]
        q = torch.softmax(_real_item_logits(lam_a, codes), dim=-1)  # [A n_items]
        expected = q @ codes  # [A dim]
        grad = expected - mean_a + ridge * lam_a  # [A dim]
        going = grad.norm(dim=-1) >= tol
        if not going.any():
            break
        active, lam_a, mean_a, q, expected, grad = (x[going] for x in (active, lam_a, mean_a, q, expected, grad))
        hessian = _second_moments(q, codes, outer)  # [A dim dim], E_q[e e^T]
        hessian = hessian - expected.unsqueeze(2) * expected.unsqueeze(1) + ridge * eye
        step = torch.linalg.solve(hessian, grad.unsqueeze(-1)).squeeze(-1)  # [A dim]
        size = torch.ones(len(active), 1, dtype=codes.dtype, device=codes.device)
        value_a = value[active]
        for _ in range(30):  # halve the step of the rows whose objective would rise
            trial = _maxent_objective(lam_a - size * step, codes, mean_a, ridge)
            worse = trial > value_a
            if not worse.any():
                break
            size = torch.where(worse.unsqueeze(1), size / 2, size)
        better = trial <= value_a
        lam[active] = torch.where(better.unsqueeze(1), lam_a - size * step, lam_a)
        value[active] = torch.where(better, trial, value_a)
    return lam


DECODINGS = ("dot", "maxent")


class MeanCodeReadout(Rescored):
    """Each row scored through ``codes`` (set them before evaluating) by the mean code m_p of the wrapped model's
    next-item distribution p (the softmax of its full-sort scores over the real items, in float64; item 0 is
    RecBole's padding id): ``codes @ m_p`` as :func:`readout_scores`, or with the module's refinements:

    * ``affine``: ``(center, directions)`` of :func:`rank_r_affine`; m_p is replaced by its approximation;
    * ``guidance_weight`` w with ``null_code`` m_pop: scores ``codes @ ((1 + w) m_p - w m_pop)``;
    * ``collected``: a list; each batch's (unapproximated) mean codes ``[B dim]`` are appended to it;
    * ``noise`` s: each mean code m gets Gaussian noise of expected norm ``s |m - m_pop|`` (before the other
      refinements; from ``noise_seed``, per batch in loader order);
    * ``decode="maxent"``: scores ``codes @ lam`` with lam the :func:`natural_parameters` of the (final) mean code.
    """

    codes = None
    affine = None
    guidance_weight = 0.0
    null_code = None
    collected = None
    noise = 0.0
    noise_seed = 0
    decode = "dot"
    _noise_generator = None

    def full_sort_predict(self, interaction):
        logits = self.model.full_sort_predict(interaction).double()  # [B n_items]
        logits[:, 0] = float("-inf")
        p = torch.softmax(logits, dim=-1)  # [B n_items]
        codes = self.codes.to(p.device)
        mean_code = p @ codes  # [B dim]
        if self.collected is not None:
            self.collected.append(mean_code.cpu())
        if self.noise:
            if self._noise_generator is None:
                self._noise_generator = torch.Generator().manual_seed(self.noise_seed)
            spread = (mean_code - self.null_code.to(p.device)).norm(dim=-1, keepdim=True)  # [B 1]
            draw = torch.randn(mean_code.shape, generator=self._noise_generator, dtype=mean_code.dtype)
            mean_code = mean_code + draw.to(p.device) * spread * (self.noise / mean_code.shape[1] ** 0.5)
        if self.affine is not None:
            center, directions = (x.to(p.device) for x in self.affine)
            mean_code = center + (mean_code - center) @ directions @ directions.T  # [B dim]
        if self.guidance_weight:
            mean_code = (1.0 + self.guidance_weight) * mean_code - self.guidance_weight * self.null_code.to(p.device)
        if self.decode == "maxent":
            mean_code = natural_parameters(mean_code, codes)  # [B dim]
        return (mean_code @ codes.T).float()  # [B n_items]


@torch.no_grad()
def code_readout(model_file, dims=(64, 256, 1024), seed=0, split="test", distribution="popularity",
                 guidance_weight=0.0, oracle_ranks=(), decode="dot", noise_levels=()):
    """Metrics of ranking every user by ``e_i . sum_j p_j e_j`` on ``split``, once per code table
    (:func:`code_tables`), p the training popularity or the checkpoint's own next-item distribution (see the module).

    With ``distribution="model"``: ``guidance_weight`` w reads ``(1 + w) m_p - w m_pop`` (every row), each rank r
    of ``oracle_ranks`` below an SVD table's dim adds a row for that table with rank-r affine mean codes,
    ``decode="maxent"`` ranks by the natural parameters of each mean code instead of the mean code itself (every
    table but the exact one, where both rank by p), and each level s of ``noise_levels`` adds a row for each SVD table
    with noise of relative size s on the mean codes (see the module). Maximum-entropy decoding solves a
    ``dim x dim`` Newton system per user and step: minutes for 64-d codes on ml-1m's 6,000 users on one CPU core.

    Returns:
        list[dict]: one row per code table: ``codes``, ``dim``, ``rank`` (``None``: not approximated), ``noise``
        (``None``: none), ``decode`` and the metrics.
    """
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"distribution must be one of {list(DISTRIBUTIONS)}, not {distribution!r}")
    check_split(split)  # before the minute-long load
    if decode not in DECODINGS:
        raise ConfigError(f"decode must be one of {list(DECODINGS)}, not {decode!r}")
    if distribution != "model" and (guidance_weight or oracle_ranks or noise_levels or decode != "dot"):
        raise ConfigError("guidance_weight, oracle_ranks, noise_levels and decode read a model's distribution: use "
                          "distribution='model'")
    if any(float(s) <= 0 for s in noise_levels):
        raise ConfigError(f"noise levels must be > 0, got {list(noise_levels)}")
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

    def row(name, dim, rank=None, noise=None):
        if distribution == "model":
            scored.noise, scored._noise_generator = noise or 0.0, None  # each noisy row draws from noise_seed afresh
        metrics = checkpoint.metrics(eval_data, rescored=scored)
        return {"codes": name, "dim": dim, "rank": rank, "noise": noise, "decode": getattr(scored, "decode", "dot"),
                **metrics}

    for name, dim, codes in code_tables(model, config, train_dataset, dims, seed):
        codes = codes.detach().double().cpu()
        if distribution == "popularity":
            scored.scores = readout_scores(codes, popularity).float().to(config["device"])  # [n_items]
            rows.append(row(name, dim))
            continue
        ranks = sorted({int(r) for r in oracle_ranks if int(r) < dim}) if name == "svd" else []
        scored.codes, scored.null_code, scored.affine = codes, popularity @ codes, None  # m_pop: [dim]
        scored.decode = "dot" if name == EXACT else decode  # exact codes: m_p is p, both decodings rank by it
        scored.collected = [] if ranks else None
        rows.append(row(name, dim))
        mean_codes = torch.cat(scored.collected) if ranks else None  # [users dim]
        scored.collected = None
        for rank in ranks:
            scored.affine = rank_r_affine(mean_codes, rank)
            rows.append(row(name, dim, rank=rank))
        scored.affine = None
        for level in noise_levels if name == "svd" else ():
            rows.append(row(name, dim, noise=float(level)))
    return rows


ORACLES = ("one-step", "generated", "least-squares")


@torch.no_grad()
def least_squares_read(model, config, train_data, ridge=1.0):
    r"""The affine read of x_0 from h that fits a DreamRec's training targets best: ``W`` ``[H D]`` and ``c`` ``[D]``
    minimising :math:`\sum_m |h_m W + c - x_{0,m}|^2 + \text{ridge} |W|^2` over every training target m (its h from
    the model's own encoder in evaluation mode, its x_0 the target's code), and the mean h ``[H]``.

    This is what a denoiser linear in h would read at the last step if it were trained there alone (x_T carries
    almost nothing of x_0): :class:`OracleDecoding` ranks by it as the ``least-squares`` oracle. Normal equations
    accumulated in float64 over the training loader (one pass of the encoder, no gradients)."""
    from recbole_dreamrec.data import train_loader  # the training targets as the model's training reads them

    was_training = model.training
    model.eval()
    size = model.hidden_size + 1
    gram = torch.zeros(size, size, dtype=torch.float64)  # [H+1 H+1]: sum of [h 1]^T [h 1]
    cross = torch.zeros(size, model.code_size, dtype=torch.float64)  # [H+1 D]: sum of [h 1]^T x_0
    try:
        for batch in train_loader(config, train_data):
            h, target = model.training_targets(batch.to(model.device))  # [M H], [M]
            design = torch.cat([h, torch.ones_like(h[:, :1])], dim=1).double().cpu()  # [M H+1]
            gram += design.T @ design
            cross += design.T @ model.codes[target].double().cpu()
    finally:
        model.train(was_training)
    solution = ridge_solution(gram, cross, ridge).float().to(model.device)  # [H+1 D], the bias not shrunk
    h_mean = (gram[-1, :-1] / gram[-1, -1]).float().to(model.device)  # [H]
    return solution[:-1], solution[-1], h_mean


ORACLE_DECODINGS = (*DECODINGS, "maxent-lambda")


class OracleDecoding(Rescored):
    """A DreamRec checkpoint scored from its own oracle x (``[B D]``): ``codes @ x`` (``decode="dot"``, what DreamRec
    does) or ``codes @ lam``, lam the :func:`natural_parameters` of x read as a mean code (``"maxent"``). Both oracles
    use the model's current inference setting (its guidance weight w):

    * ``oracle="generated"``: x is the model's generation;
    * ``oracle="one-step"``: x is ``(1 + w) f(0, h, T) - w f(0, null, T)``, the model's guided x0-prediction from
      x_T = 0 at the last diffusion step: no sampling noise, and for an MSE-trained model an estimate of the
      conditional mean code (x_T carries almost nothing of x_0 at step T).

    * ``oracle="least-squares"``: x is ``h W + c + w (h - mean h) W`` (:func:`least_squares_read`, set as
      ``least_squares``): the training targets' best affine read of x_0 from the same h, with guidance read as
      classifier-free guidance reads it, ``(1 + w)`` times the read of h less ``w`` times the read of the mean h.

    ``decode="maxent-lambda"`` (one-step oracle only) applies the guidance to the natural parameters instead of the
    mean codes: ``(1 + w) lam(f(0, h, T)) - w lam(f(0, null, T))``, i.e. to the log-probabilities of the two
    decoded distributions, as classifier-free guidance does to a classifier's (Ho & Salimans 2022). Each mean code
    is then a prediction of the model, inside the codes' convex hull, where the guided mean code of ``"maxent"``
    is extrapolated beyond it for w > 0 (there lam grows until the ridge stops it).
    """

    oracle = "one-step"
    decode = "dot"
    least_squares = None  # (W, c, mean h) of least_squares_read, for oracle "least-squares"

    def one_step_parts(self, item_seq, item_seq_len):
        """``f(0, h, T)`` and ``f(0, null, T)``, ``[B D]`` each: the conditional and unconditional x0-predictions
        from x_T = 0 at the last step."""
        model = self.model
        h = model.forward(item_seq, item_seq_len)  # [B H]
        t = torch.full((h.shape[0],), model.diffusion.num_timesteps - 1, dtype=torch.long, device=h.device)  # [B]
        x_t = torch.zeros(h.shape[0], model.code_size, device=h.device)  # [B D]
        return model.denoiser(x_t, h, t), model.denoiser(x_t, model.null_guidance.expand_as(h), t)

    def one_step_oracle(self, item_seq, item_seq_len):
        cond, uncond = self.one_step_parts(item_seq, item_seq_len)  # [B D] each
        return classifier_free_guidance(cond, uncond, self.model.guidance_weight)  # [B D]

    def least_squares_oracle(self, item_seq, item_seq_len):
        weight, bias, h_mean = self.least_squares  # [H D], [D], [H]
        h = self.model.forward(item_seq, item_seq_len)  # [B H]
        return h @ weight + bias + self.model.guidance_weight * ((h - h_mean) @ weight)  # [B D]

    def full_sort_predict(self, interaction):
        model = self.model
        item_seq, item_seq_len = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
        codes = model.codes.detach()  # [n_items D]
        codes64 = codes.double().cpu()
        if self.decode == "maxent-lambda":
            cond, uncond = self.one_step_parts(item_seq, item_seq_len)  # [B D] each
            lam_cond = natural_parameters(cond.double().cpu(), codes64)  # [B D]
            lam_uncond = natural_parameters(uncond[:1].double().cpu(), codes64)  # [1 D]: one null vector, one x_T
            lam = classifier_free_guidance(lam_cond, lam_uncond, model.guidance_weight)  # [B D]
            return (lam @ codes64.T).float().to(cond.device)  # [B n_items]
        if self.oracle == "generated":  # the model's own oracle, in the codes it ranks by (a refit's table, if any)
            oracle = model.generate(item_seq, item_seq_len)  # [B D]
            codes = getattr(model, "ranking_codes", codes).detach()
            codes64 = codes.double().cpu()
        elif self.oracle == "least-squares":
            oracle = self.least_squares_oracle(item_seq, item_seq_len)  # [B D]
        else:
            oracle = self.one_step_oracle(item_seq, item_seq_len)  # [B D]
        if self.decode == "maxent":
            lam = natural_parameters(oracle.double().cpu(), codes64)  # [B D]
            return (lam @ codes64.T).float().to(oracle.device)  # [B n_items]
        return oracle @ codes.T  # [B n_items]


@torch.no_grad()
def oracle_decoding(model_file, split="valid", oracles=("one-step",), guidance_weights=(0.0,),
                    decodings=DECODINGS, metrics=(), ridge=1.0):
    """Metrics of a DreamRec checkpoint on ``split`` with its oracles decoded linearly and by maximum entropy
    (:class:`OracleDecoding`), one row per oracle, guidance weight and decoding, each at the checkpoint's inference
    setting with the row's guidance weight. ``metrics`` (names such as ``ndcg@20``, any case): checked against those
    the checkpoint's config evaluates before any evaluation starts (every row has all of those); default
    ``ndcg@10, hit@10``.

    A ``maxent`` or ``maxent-lambda`` row also holds its difference from the ``dot`` row of the same oracle and
    weight (where ``decodings`` has ``dot``) in each of ``metrics``, user by user over the same users, with the
    standard error of that paired difference (:func:`~recbole_dreamrec.analysis.evaluation.paired_difference`):
    ``"<metric> vs dot"`` and ``"<metric> vs dot se"``. Where ``oracles`` has ``generated`` (the model's own
    ranking), a row of another oracle likewise holds its difference from the ``generated`` row of the same weight and
    decoding: ``"<metric> vs generated"`` and ``"<metric> vs generated se"``. ``ridge``: that of the
    ``least-squares`` oracle's fit (:func:`least_squares_read`).

    Returns:
        list[dict]: ``oracle``, ``guidance_weight``, ``decode``, ``seconds``, ``users`` and the metrics.
    """
    check_split(split)  # before the minute-long load
    for name, given, known in (("oracle", oracles, ORACLES), ("decode", decodings, ORACLE_DECODINGS)):
        unknown = [value for value in given if value not in known]
        if unknown or not given:
            raise ConfigError(f"{name} must be among {list(known)}, got {list(given)}")
    if "maxent-lambda" in decodings and set(oracles) - {"one-step"}:
        raise ConfigError("decode maxent-lambda guides the one-step oracles' natural parameters: "
                          "use --oracles one-step")
    if any(float(w) < 0 for w in guidance_weights) or not guidance_weights:
        raise ConfigError(f"guidance weights must be >= 0, got {list(guidance_weights)}")
    checkpoint = Checkpoint(model_file)
    if checkpoint.config["model"] != "DreamRec":
        raise ConfigError(f"{model_file} is a {checkpoint.config['model']} checkpoint: oracles are DreamRec's")
    evaluated = [f"{m.lower()}@{k}" for m in checkpoint.config["metrics"] for k in checkpoint.config["topk"]]
    metrics = [m.lower() for m in metrics] or [m for m in ("ndcg@10", "hit@10") if m in evaluated]
    missing = [m for m in metrics if m not in evaluated]
    if missing:
        raise ConfigError(f"metrics {missing} are not evaluated for {model_file}; its config gives {evaluated}")
    eval_data, scored, rows = checkpoint.split_data(split), OracleDecoding(checkpoint.model), []
    if "least-squares" in oracles:
        scored.least_squares = least_squares_read(checkpoint.model, checkpoint.config, checkpoint.train_data, ridge)
    per_user = {}  # (oracle, w, decode) -> {metric: [n_users]}
    for oracle in oracles:
        for weight in guidance_weights:
            apply_inference_setting(checkpoint.model, checkpoint.config, {"guidance_weight": float(weight)})
            these = []
            for decode in decodings:
                scored.oracle, scored.decode = oracle, decode
                start = time.perf_counter()
                values, per_user[oracle, float(weight), decode] = checkpoint.user_metrics(eval_data, metrics,
                                                                                          rescored=scored)
                these.append({"oracle": oracle, "guidance_weight": float(weight), "decode": decode,
                              "seconds": time.perf_counter() - start, "users": eval_data.sample_size, **values})
            rows += these
    apply_inference_setting(checkpoint.model, checkpoint.config, {})  # as saved
    for row in rows:  # paired differences, user by user: from the dot decoding, and from the model's own oracle
        users = per_user[row["oracle"], row["guidance_weight"], row["decode"]]
        for other, label in (((row["oracle"], row["guidance_weight"], "dot"), "dot"),
                             (("generated", row["guidance_weight"], row["decode"]), "generated")):
            if other in per_user and label not in (row["decode"], row["oracle"]):
                for m in metrics:
                    row[f"{m} vs {label}"], row[f"{m} vs {label} se"] = paired_difference(users[m], per_user[other][m])
    return rows


def format_oracle_decoding(rows, metrics=("ndcg@10", "hit@10"), split="valid"):
    """``rows`` of :func:`oracle_decoding` as a Markdown table; a maxent or maxent-lambda row also shows its paired
    difference from the dot row of the same oracle and weight, and a row of another oracle its difference from the
    generated row of the same weight and decoding, each with its standard error, where the rows hold one."""
    metrics = [m.lower() for m in metrics]
    paired = [(m, label) for label in ("dot", "generated") for m in metrics if any(f"{m} vs {label}" in r for r in rows)]
    header = ["oracle", "w", "decoding", *[f"{split} {m}" for m in metrics],
              *[f"{m} − {label} (paired SE)" for m, label in paired], "seconds"]
    body = [[r["oracle"], f"{r['guidance_weight']:g}", r["decode"], *[f"{r[m]:.4f}" for m in metrics],
             *[f"{r[f'{m} vs {label}']:+.4f} ({r[f'{m} vs {label} se']:.4f})" if f"{m} vs {label}" in r else ""
               for m, label in paired],
             f"{r['seconds']:.0f}"] for r in rows]
    return "\n".join(markdown_table(header, body))


def training_popularity(train_dataset, model):
    """``[n_items]`` float64: the share of each item among the training rows' targets."""
    targets = train_dataset.inter_feat[model.ITEM_ID]
    popularity = torch.bincount(targets, minlength=model.n_items).double()
    return popularity / popularity.sum()


def format_readout(rows, metrics=("ndcg@10", "hit@10"), split="test"):
    """Markdown table of :func:`code_readout`'s rows (``rank``, ``noise`` and decoding columns when some row needs
    them)."""
    ranked = any(r.get("rank") is not None for r in rows)
    noisy = any(r.get("noise") is not None for r in rows)
    decoded = any(r.get("decode", "dot") != "dot" for r in rows)
    header = (["codes", "dim"] + (["oracle rank"] if ranked else []) + (["noise"] if noisy else [])
              + (["decoding"] if decoded else []) + [f"{split} {m}" for m in metrics])
    body = [
        [r["codes"], r["dim"]] + ([r.get("rank") or "full"] if ranked else [])
        + ([r.get("noise") or 0] if noisy else []) + ([r.get("decode", "dot")] if decoded else [])
        + [f"{r[m]:.4f}" for m in metrics]
        for r in rows
    ]
    return "\n".join(markdown_table(header, body))
