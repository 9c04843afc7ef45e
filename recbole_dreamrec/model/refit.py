r"""The last diffusion step refit by least squares after training (``refit_last_step``).

With DDIM at K = 1 DreamRec's oracle is one guided x0-prediction at the last step (DreamRec Eq. 13),

.. math:: \hat x_0 = (1 + w) f(x_T, h, T-1) - w f(x_T, \varnothing, T-1).

The paper's denoiser is one linear layer, :math:`f(x_t, h, t) = W_x x_t + W_h h + W_t e(t) + b`, trained at every t
uniformly: one matrix :math:`W_h` reads h at every step, most of them steps where x_t already carries x_0. With the
encoder fixed, the best read of the last step has a closed form, and it ranks better than the trained one on ml-1m
(``inspect_dreamrec.py decode --oracles least-squares``; ``benchmarks/results/ml-1m``). :func:`refit_last_step`:

1. for every training target m, its guidance vector h_m (the encoder in evaluation mode, as in inference), its code
   x_{0,m} and :math:`x_{T,m} \sim q(x_T | x_0)` (DDPM Eq. 4, noise from ``seed``);
2. solves :math:`\min_{A, B, c} \sum_m |A x_{T,m} + B h_m + c - x_{0,m}|^2 + \rho (|A|^2 + |B|^2)` (normal
   equations in float64; the bias is not shrunk);
3. writes A and B into the denoiser's x_t and h blocks and :math:`c - W_t e(T-1)` into its bias, so that
   :math:`f(x_T, h, T-1) = A x_T + B h + c`;
4. sets the null vector to the mean h, so that the unconditional prediction is the read of the average history and
   guidance reads :math:`A x_T + c + B h + w B (h - \bar h)`.

With ``refit_features`` F > 0 the read also takes F random ReLU features of h,
:math:`\phi(h) = \max(0, h P + o)` (the denoiser's :class:`~recbole_dreamrec.model.denoisers.RandomFeatureRead`;
P ~ N(0, 1 / (H s^2)) with s the mean standard deviation of h's coordinates over the first batch, o ~ N(0, 1/4),
both from ``seed``): step 1 adds them to each target's row, step 2 fits :math:`A x_T + B h + C \phi(h) + c` and
step 3 writes C into the read. A linear map of h cannot read everything h holds: on ml-1m the features gain about
+0.01 valid NDCG@10 (``benchmarks/results/ml-1m``).

With ``refit_code_size`` N > 0 the read goes into a table of its own instead (the model's
:class:`~recbole_dreamrec.model.denoisers.TableRead`: a fixed ``[n_items N]`` table of the training data's SVD codes,
which then ranks the items): steps 1 and 2 fit :math:`B h + C \phi(h) + c` to each target's code in that table,
without x_T (at the last step it carries almost nothing of x_0), and step 3 writes B, C, c into the table read; the
denoiser is left as trained. Wider codes carry more of a distribution over items through a dot product, and a fixed
table costs nothing in training: on ml-1m the read into the full-rank table gains about +0.013 valid NDCG@10 over the
same read into the model's 512-d codes (``benchmarks/results/ml-1m/wider-codes``). The right-hand side of the normal
equations is summed per target item (``sums^T codes``), so the table's width costs one product at the end.

With ``refit_last_item`` the table read also takes the history's last item: one more block of rows, the last item's
one-hot vector, read by a row of its own per item, :math:`T_{i_L}` (fitted with B, C and c in the same least squares;
its blocks of the normal equations are summed per last item, not multiplied out), and the unconditional read adds
their mean over the training targets. On ml-1m the last item adds to what h holds
(``benchmarks/results/ml-1m/history-read``). T's rows are shrunk by a ridge of their own (``refit_last_item_ridge``):
a row sees only its item's count as a last item (tens to hundreds on ml-1m), the dense blocks every target. With
``refit_last_item_lags`` K > 1 the same rows read the last K items, :math:`x = \sum_k a^k e_{i_{L-k}}` (a the
``refit_last_item_decay``; the padding row where the history is shorter), so that the one-hot block of the normal
equations is no longer diagonal: it is summed per pair of items.

The denoiser then predicts well at the last step only: a refit model is read with DDIM at K = 1 (a rule of
:mod:`~recbole_dreamrec.model.settings`).
"""

import torch


def ridge_solution(gram, cross, ridge):
    """The ridge least-squares solution from normal equations whose last row and column are the bias (not shrunk):
    ``(gram + diag(ridge)') ^ -1 cross``, ``ridge`` a number or one per row ``[S]``, ' the bias's entry zeroed,
    float64."""
    penalty = torch.as_tensor(ridge, dtype=torch.float64).expand(gram.shape[0]).clone()
    penalty[-1] = 0.0
    return torch.linalg.solve(gram + torch.diag(penalty), cross)


def _processes():
    """``(rank, world size)`` of a multi-process (DDP) run; ``(0, 1)`` in a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _summed_over_processes(tensors, count, device):
    """Under several processes (DDP, each refitting its share of the training data) every accumulated tensor summed
    over them in place, and the count too, so that each solves the normal equations of every training target (and
    of the few that the distributed sampler repeats to even out the shares: fewer than the number of processes);
    in a single process, as they are. Returns the count."""
    if _processes()[1] == 1:
        return count
    for tensor in tensors:
        on_device = tensor.to(device)  # NCCL reduces device tensors only
        torch.distributed.all_reduce(on_device)
        tensor.copy_(on_device)
    total = torch.tensor([count], dtype=torch.long, device=device)
    torch.distributed.all_reduce(total)
    return int(total)


def _first_process_value(value, device):
    """``value`` (a number) as the first process (rank 0) has it: the random features' scale, taken from each
    process's own first batch, must be one for all of them."""
    if _processes()[1] == 1:
        return value
    shared = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.broadcast(shared, src=0)
    return float(shared)


def _with_one_hot_block(gram, sums, by_last, pairs, block):
    """The normal equations ``[S S]``, ``[n_items S]`` of the rows ``[z 1]`` grown by a block ``x`` before the bias,
    ``[z x 1]``, x a weighted sum of one-hot vectors of items: its cross terms are the rows summed per item, each
    with its weight (``by_last`` ``[n S]``), its own block the sum of x x^T (``block`` ``[n n]``; diagonal, each last
    item's count, for the last item alone), its right-hand side the weighted (target, item) counts (``pairs``)."""
    S, n = gram.shape[0], by_last.shape[0]
    dense = torch.cat([torch.arange(S - 1), torch.tensor([S + n - 1])])  # where [z 1] go
    one_hot = torch.arange(S - 1, S + n - 1)
    grown = torch.zeros(S + n, S + n, dtype=torch.float64)
    grown[dense[:, None], dense] = gram
    grown[one_hot[:, None], dense] = by_last
    grown[dense[:, None], one_hot] = by_last.T
    grown[one_hot[:, None], one_hot] = block
    grown_sums = torch.zeros(sums.shape[0], S + n, dtype=torch.float64)
    grown_sums[:, dense] = sums
    grown_sums[:, one_hot] = pairs
    return grown, grown_sums


@torch.no_grad()
def refit_last_step(model, batches, ridge=1.0, seed=0, last_item_ridge=1.0, recent_weights=(1.0,)):
    """Refit ``model``'s (a DreamRec with the ``mlp1`` denoiser) last-step read by least squares over the training
    targets of ``batches`` (its training loader: RecBole's rows or training windows) as the module says; the model is
    changed in place and left in the mode it was in. With a table read (``model.table_read``, its codes filled) the
    read into the table is fitted instead, and the denoiser is left as trained. ``ridge`` shrinks every coefficient
    but the bias, ``last_item_ridge`` the last item's rows T instead (``refit_last_item_ridge``). T's rows read
    ``sum_k recent_weights[k] onehot(item k before the last)`` (the last item alone by default).

    Returns:
        int: the number of training targets fitted.
    """
    table = model.table_read  # TableRead (refit_code_size > 0), or None: the denoiser's read into the model's codes
    read = model.denoiser.feature_read if table is None else table.feature_read  # RandomFeatureRead, or None
    codes = model.codes if table is None else table.codes  # [n_items D]: what the read predicts
    D = 0 if table is not None else model.code_size  # x_T's columns: the table read does not read x_T
    H = model.hidden_size
    F = 0 if read is None else read.weight.shape[0]
    last = model.diffusion.num_timesteps - 1
    generator = torch.Generator().manual_seed(seed + _processes()[0])  # each process its own noise
    features_generator = torch.Generator().manual_seed(seed)  # apart: the noise is the same for every F
    was_training = model.training
    model.eval()
    size = D + H + F + 1
    gram = torch.zeros(size, size, dtype=torch.float64)  # [S S], S = D+H+F+1: sum of [x_T h phi 1]^T [x_T h phi 1]
    sums = torch.zeros(codes.shape[0], size, dtype=torch.float64)  # [n_items S]: the rows [x_T h phi 1] per target
    n_last = codes.shape[0] if table is not None and table.reads_last_item else 0  # the last item's one-hot block
    by_last = torch.zeros(n_last, size, dtype=torch.float64)  # [n_items S]: the rows summed per last item
    pairs = torch.zeros(codes.shape[0], n_last, dtype=torch.float64)  # [n_items n_items]: (target, last item) counts
    block = torch.zeros(n_last, n_last, dtype=torch.float64)  # [n_items n_items]: the sum of x x^T
    count = 0
    try:
        for module in (read, table):
            if module is not None:  # off until all of it is new: a refit stopped midway leaves it off
                module.fitted.fill_(False)
        for batch in batches:
            # 1. h, x_0 and x_T ~ q(x_T | x_0) for every target of the batch (and phi(h))
            batch = batch.to(model.device)
            h, target = model.training_targets(batch)  # [M H], [M]
            columns = [h]
            if table is None:
                x_start = codes[target]  # [M D]
                noise = torch.randn(x_start.shape, generator=generator).to(x_start.device)  # [M D]
                t = torch.full((x_start.shape[0],), last, dtype=torch.long, device=x_start.device)  # [M]
                columns.insert(0, model.diffusion.q_sample(x_start, t, noise))  # x_T [M D]
            if read is not None:
                if not count:  # P and o, scaled to h's spread over the first batch
                    scale = max(float(h.std(dim=0).mean()), 1e-12)  # a number: P is drawn on the CPU
                    scale = _first_process_value(scale, h.device)  # one P for every process
                    projection = torch.randn(read.projection.shape, generator=features_generator) / (H ** 0.5 * scale)
                    read.projection.copy_(projection)
                    read.offset.copy_(torch.randn(read.offset.shape, generator=features_generator) / 2)
                columns.append(read.features(h))  # [M F]
            design = torch.cat([*columns, torch.ones_like(h[:, :1])], dim=1).double().cpu()  # [M S]
            gram += design.T @ design
            sums.index_add_(0, target.cpu(), design)
            if n_last:  # x = sum_k a_k onehot(item k before the last), a_k = recent_weights[k]
                recent = model.training_last_items(batch, len(recent_weights)).cpu()  # [M K]
                ones = torch.ones(len(recent), dtype=torch.float64)  # [M]
                for k, a_k in enumerate(recent_weights):
                    by_last.index_add_(0, recent[:, k], design, alpha=a_k)  # no [M S] copy per lag
                    pairs.index_put_((target.cpu(), recent[:, k]), ones * a_k, accumulate=True)
                    for j, a_j in enumerate(recent_weights):
                        block.index_put_((recent[:, k], recent[:, j]), ones * (a_k * a_j), accumulate=True)
            count += design.shape[0]
        # under DDP: the normal equations of every process's share, summed
        count = _summed_over_processes([gram, sums, by_last, pairs, block], count, model.device)
        if n_last:  # the one-hot block before the bias: [x_T h phi onehot 1]
            gram, sums = _with_one_hot_block(gram, sums, by_last, pairs, block)
        # 2. the normal equations, the bias unshrunk: sum_m design_m^T x_0,m = sums^T codes
        cross = sums.T @ codes.double().cpu()  # [S D']
        penalty = torch.full((gram.shape[0],), float(ridge), dtype=torch.float64)  # [S]
        penalty[D + H + F:-1] = float(last_item_ridge)  # T's rows (none without the last item)
        solution = ridge_solution(gram, cross, penalty)  # [S D']
        A, B, C, c = solution[:D], solution[D:D + H], solution[D + H:D + H + F], solution[-1]  # [D D'] [H D'] [F D'] [D']
        T = solution[D + H + F:-1]  # [n_last D']: the last item's read
        # 3. into the read: f(x_T, h, T-1) = A x_T + B h + C phi(h) + c (the table's: B h + C phi(h) + T[last] + c)
        if table is None:
            net = model.denoiser.net  # nn.Linear(D + 2H, D): [x_t, h, e(t)] -> x_0
            step = torch.full((1,), last, dtype=torch.long, device=net.weight.device)
            step_term = net.weight[:, D + H:] @ model.denoiser.step_embedding(step)[0]  # [D]: W_t e(T-1)
            net.weight[:, :D] = A.T.to(net.weight)
            net.weight[:, D:D + H] = B.T.to(net.weight)
            net.bias.copy_(c.to(net.bias) - step_term)
        else:
            table.weight.copy_(B.to(table.weight))
            table.bias.copy_(c.to(table.bias))
            if n_last:  # T, and its mean over the training targets (the unconditional read's)
                table.last_item_weight.copy_(T.to(table.last_item_weight))
                frequency = gram[D + H + F:-1, -1] / gram[-1, -1]  # [n_items]: the mean x
                table.last_item_mean.copy_((frequency @ T).to(table.last_item_mean))
        if read is not None:
            read.weight.copy_(C.to(read.weight))
            read.fitted.fill_(True)
        if table is not None:
            table.fitted.fill_(True)
        # 4. the null vector: the mean h
        model.null_guidance.copy_((gram[-1, D:D + H] / gram[-1, -1]).to(model.null_guidance))
    finally:
        model.train(was_training)
    return count
