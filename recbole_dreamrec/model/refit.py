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

The denoiser then predicts well at the last step only: a refit model is read with DDIM at K = 1 (a rule of
:mod:`~recbole_dreamrec.model.settings`).
"""

import torch


def ridge_solution(gram, cross, ridge):
    """The ridge least-squares solution from normal equations whose last row and column are the bias (not shrunk):
    ``(gram + ridge I') ^ -1 cross``, I' the identity without its last diagonal entry, float64."""
    penalty = torch.full((gram.shape[0],), float(ridge), dtype=torch.float64)
    penalty[-1] = 0.0
    return torch.linalg.solve(gram + torch.diag(penalty), cross)


@torch.no_grad()
def refit_last_step(model, batches, ridge=1.0, seed=0):
    """Refit ``model``'s (a DreamRec with the ``mlp1`` denoiser) last-step read by least squares over the training
    targets of ``batches`` (its training loader: RecBole's rows or training windows) as the module says; the model is
    changed in place and left in the mode it was in.

    Returns:
        int: the number of training targets fitted.
    """
    net = model.denoiser.net  # nn.Linear(D + 2H, D): [x_t, h, e(t)] -> x_0
    read = model.denoiser.feature_read  # RandomFeatureRead, or None (refit_features 0)
    D, H = model.code_size, model.hidden_size
    F = 0 if read is None else read.weight.shape[0]
    last = model.diffusion.num_timesteps - 1
    generator = torch.Generator().manual_seed(seed)
    features_generator = torch.Generator().manual_seed(seed)  # apart: the noise is the same for every F
    was_training = model.training
    model.eval()
    size = D + H + F + 1
    gram = torch.zeros(size, size, dtype=torch.float64)  # [S S], S = D+H+F+1: sum of [x_T h phi 1]^T [x_T h phi 1]
    cross = torch.zeros(size, D, dtype=torch.float64)  # [S D]: sum of [x_T h phi 1]^T x_0
    count = 0
    try:
        if read is not None:
            read.fitted.fill_(False)  # off until its P, o and W are all new: a refit stopped midway leaves it off
        for batch in batches:
            # 1. h, x_0 and x_T ~ q(x_T | x_0) for every target of the batch (and phi(h))
            h, target = model.training_targets(batch.to(model.device))  # [M H], [M]
            x_start = model.codes[target]  # [M D]
            noise = torch.randn(x_start.shape, generator=generator).to(x_start.device)  # [M D]
            t = torch.full((x_start.shape[0],), last, dtype=torch.long, device=x_start.device)  # [M]
            x_t = model.diffusion.q_sample(x_start, t, noise)  # [M D]
            columns = [x_t, h]
            if read is not None:
                if not count:  # P and o, scaled to h's spread over the first batch
                    scale = max(float(h.std(dim=0).mean()), 1e-12)  # a number: P is drawn on the CPU
                    projection = torch.randn(read.projection.shape, generator=features_generator) / (H ** 0.5 * scale)
                    read.projection.copy_(projection)
                    read.offset.copy_(torch.randn(read.offset.shape, generator=features_generator) / 2)
                columns.append(read.features(h))  # [M F]
            design = torch.cat([*columns, torch.ones_like(h[:, :1])], dim=1).double().cpu()  # [M S]
            gram += design.T @ design
            cross += design.T @ x_start.double().cpu()
            count += x_start.shape[0]
        # 2. the normal equations, the bias unshrunk
        solution = ridge_solution(gram, cross, ridge)  # [S D]
        A, B, C, c = solution[:D], solution[D:D + H], solution[D + H:D + H + F], solution[-1]  # [D D] [H D] [F D] [D]
        # 3. into the denoiser: f(x_T, h, T-1) = A x_T + B h + C phi(h) + c
        step = torch.full((1,), last, dtype=torch.long, device=net.weight.device)
        step_term = net.weight[:, D + H:] @ model.denoiser.step_embedding(step)[0]  # [D]: W_t e(T-1)
        net.weight[:, :D] = A.T.to(net.weight)
        net.weight[:, D:D + H] = B.T.to(net.weight)
        net.bias.copy_(c.to(net.bias) - step_term)
        if read is not None:
            read.weight.copy_(C.to(read.weight))
            read.fitted.fill_(True)
        # 4. the null vector: the mean h
        model.null_guidance.copy_((gram[-1, D:D + H] / gram[-1, -1]).to(model.null_guidance))
    finally:
        model.train(was_training)
    return count
