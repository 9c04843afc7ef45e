# -*- coding: utf-8 -*-

"""
DreamRec
################################################

Reference:
    Zhengyi Yang et al. "Generate What You Prefer: Reshaping Sequential Recommendation via Guided Diffusion."
    in NeurIPS 2023.

Reference:
    https://github.com/YangZhengyi98/DreamRec

"""

from logging import getLogger

import torch
from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.layers import TransformerEncoder
from recbole.utils import InputType

from recbole_dreamrec.data import WINDOW_TARGETS_FIELD
from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.model.denoisers import RandomFeatureRead, TableRead, build_denoiser
from recbole_dreamrec.model.diffusion import GaussianDiffusion, get_beta_schedule
from recbole_dreamrec.model.encoders import GRUEncoder, PaperEncoder
from recbole_dreamrec.model.item_init import sequential_interaction_matrix, svd_item_codes
from recbole_dreamrec.model.noise import KeyedNoise, history_keys
from recbole_dreamrec.model.refit import refit_last_step
from recbole_dreamrec.model.samplers import build_sampler, classifier_free_guidance
from recbole_dreamrec.model.settings import check_config


def transformer_layer_at(layer, hidden_states, attention_mask, index):
    r"""Output of a RecBole ``TransformerLayer`` at some positions of each row: ``index`` ``[B C]`` -> ``[B C H]``.

    Equal to ``layer(hidden_states, attention_mask)`` gathered at ``index``: a position's output depends on the
    other positions only through the attention keys and values, so the queries, attention and feed-forward layer
    are computed for the gathered positions alone (L / C times less work in the last layer).
    """
    mha = layer.multi_head_attention
    rows = torch.arange(hidden_states.size(0), device=hidden_states.device).unsqueeze(1)  # [B 1]
    query_input = hidden_states[rows, index]  # [B C H]
    query = mha.transpose_for_scores(mha.query(query_input)).permute(0, 2, 1, 3)  # [B heads C d]
    key = mha.transpose_for_scores(mha.key(hidden_states)).permute(0, 2, 3, 1)  # [B heads d L]
    value = mha.transpose_for_scores(mha.value(hidden_states)).permute(0, 2, 1, 3)  # [B heads L d]
    mask = attention_mask[:, 0][rows, index].unsqueeze(1)  # [B 1 C L]
    scores = torch.matmul(query, key) / mha.sqrt_attention_head_size + mask  # [B heads C L]
    probs = mha.attn_dropout(mha.softmax(scores))
    context = torch.matmul(probs, value).permute(0, 2, 1, 3).reshape(query_input.shape)  # [B C H]
    attention_output = mha.LayerNorm(mha.out_dropout(mha.dense(context)) + query_input)  # [B C H]
    return layer.feed_forward(attention_output)  # [B C H]


def window_positions(item_seq_len, window_targets):
    r"""The loss positions of training windows (:mod:`recbole_dreamrec.data`): row b's last ``window_targets[b]``
    real positions, as ``[B C]`` positions (C the largest count; shorter rows' first entries repeat a real position)
    and a ``[B C]`` mask of the ones that count."""
    count = int(window_targets.max())
    offsets = torch.arange(-count, 0, device=item_seq_len.device)  # [C]: -C .. -1
    positions = (item_seq_len.unsqueeze(1) + offsets).clamp(min=0)  # [B C]
    counts = offsets.unsqueeze(0) >= -window_targets.unsqueeze(1)  # [B C]
    return positions, counts


def next_items(item_seq, item_seq_len, target):
    r"""The item each position of a window predicts, ``[B L]``: item j + 1 of the row's history at position j, the
    row's own target at its last real position (0 after it)."""
    following = torch.cat([item_seq[:, 1:], item_seq.new_zeros(item_seq.size(0), 1)], dim=1)  # [B L]
    return following.scatter(1, (item_seq_len - 1).unsqueeze(1), target.unsqueeze(1))  # [B L]


def recent_items(item_seq, positions, lags):
    r"""The item at each position and the ``lags - 1`` before it, ``[B C lags]`` for positions ``[B C]``: the
    history's last item first (0, the padding id, before the sequence's start)."""
    items = []
    for k in range(lags):
        earlier = item_seq.gather(1, (positions - k).clamp(min=0))  # [B C]
        items.append(torch.where(positions >= k, earlier, torch.zeros_like(earlier)))
    return torch.stack(items, dim=-1)  # [B C lags]


def last_items(item_seq, item_seq_len, lags=1):
    r"""The last real item of each history and the ``lags - 1`` before it, ``[B lags]`` (see :func:`recent_items`)."""
    return recent_items(item_seq, (item_seq_len - 1).unsqueeze(1), lags)[:, 0]  # [B lags]


def drop_guidance(h, null_guidance, uncond_prob):
    r"""Classifier-free guidance training: replace each row of ``h`` by the null vector with probability p."""
    drop = torch.rand(h.shape[0], 1, device=h.device) < uncond_prob  # [B 1]
    return torch.where(drop, null_guidance.expand_as(h), h)  # [B H]


class DreamRec(SequentialRecommender):
    r"""DreamRec generates the embedding of the "oracle" next item by guided diffusion and ranks real items by
    their dot product with it.

    A Transformer encodes the history into the guidance vector h. Training noises the target item's embedding
    and trains a denoiser f(x_t, h, t) to recover it (x0-prediction), with no negative samples; h is replaced by a
    learned null vector with probability ``uncond_prob`` so that one network is both the conditional and the
    unconditional model. Inference runs guided reverse diffusion,
    :math:`\hat x_0 = (1 + w) f(x_t, h, t) - w f(x_t, \varnothing, t)`, from Gaussian noise.

    NOTE:
        Item embeddings are the diffusion's clean samples x_0, so they start on the scale of the unit Gaussian noise
        (mean square ``embedding_init_std``^2 = 1), not RecBole's N(0, 0.02^2), on which x_t is almost pure noise at
        nearly every t. With ``item_embedding_init: svd`` (the default) they start from the leading right singular
        vectors of the training user-item matrix; ``normal`` draws N(0, 1) as the paper does. Random codes in 64
        dimensions cannot carry a distribution over thousands of items through a dot product, and with the target
        detached (``detach_target``, needed against collapse) they hardly move, so the paper's init ranks below Pop
        on ml-100k (see :mod:`recbole_dreamrec.model.item_init` and the README).
    """

    input_type = InputType.POINTWISE
    check_config = staticmethod(check_config)

    def __init__(self, config, dataset):
        super(DreamRec, self).__init__(config, dataset)
        check_config(config)

        # load parameters info
        self.n_layers = config["n_layers"]
        self.n_heads = config["n_heads"]
        self.hidden_size = config["hidden_size"]  # same as embedding_size
        self.inner_size = config["inner_size"]  # the dimensionality in feed-forward layer
        self.hidden_dropout_prob = config["hidden_dropout_prob"]
        self.attn_dropout_prob = config["attn_dropout_prob"]
        self.hidden_act = config["hidden_act"]
        self.layer_norm_eps = config["layer_norm_eps"]
        self.initializer_range = config["initializer_range"]
        self.code_size = config["code_size"] or self.hidden_size  # D, the size of the diffusion's samples
        self.separate_codes = config["code_size"] > 0
        self.embedding_init_std = config["embedding_init_std"]
        self.item_embedding_init = config["item_embedding_init"]

        self.guidance_weight = config["guidance_weight"]  # w
        self.uncond_prob = config["uncond_prob"]  # p
        self.diffusion_loss_type = config["diffusion_loss_type"]
        self.detach_target = config["detach_target"]
        self.sampling_seed = config["seed"]
        self.svd_seed = config["seed"]  # the codes' seed: apart, as an evaluation may set another sampling seed
        self.svd_group_field = config["svd_group_field"]
        self.generation_samples = config["generation_samples"]  # S oracles per history, averaged
        # refit_last_step, refit_features and refit_code_size, which act after training: set_after_training, once
        # the denoiser exists

        # define layers and loss
        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        self.encoder_type = config["encoder_type"]
        if self.encoder_type == "paper":
            self.paper_encoder = PaperEncoder(self.hidden_size, self.n_heads, self.hidden_dropout_prob)
        elif self.encoder_type == "gru":
            self.gru_encoder = GRUEncoder(self.hidden_size, self.n_layers, self.hidden_dropout_prob)
        else:
            self.trm_encoder = TransformerEncoder(
                n_layers=self.n_layers,
                n_heads=self.n_heads,
                hidden_size=self.hidden_size,
                inner_size=self.inner_size,
                hidden_dropout_prob=self.hidden_dropout_prob,
                attn_dropout_prob=self.attn_dropout_prob,
                hidden_act=self.hidden_act,
                layer_norm_eps=self.layer_norm_eps,
            )
            self.LayerNorm = nn.LayerNorm(self.hidden_size, eps=self.layer_norm_eps)
            self.dropout = nn.Dropout(self.hidden_dropout_prob)

        if self.separate_codes:
            # the diffusion's data x_0 and the ranking codes: their own [n_items D] table
            self.item_codes = nn.Parameter(torch.empty(self.n_items, self.code_size), requires_grad=not self.detach_target)
        self.null_guidance = nn.Parameter(torch.empty(self.hidden_size))  # the learned "no guidance" vector
        self.denoiser = build_denoiser(config["denoiser_type"], self.hidden_size, self.code_size)
        self.table_read = None  # a TableRead where refit_code_size > 0
        self.set_after_training(config)
        self.diffusion = GaussianDiffusion(
            get_beta_schedule(config["beta_schedule"], config["timesteps"], config["beta_start"], config["beta_end"])
        )
        self.sampler = build_sampler(
            config["sampler"], self.diffusion, config["sampling_steps"], config["ddim_eta"]
        )
        # the steps training draws t from: all T (train_steps None, the paper), or only the steps the sampler visits
        # (DDIM with K = 1: t = T-1 alone, where the oracle is read), fixed here for the model's life. A saved config
        # older than the key has None: all T
        self.train_timesteps = config["train_timesteps"] or "all"
        self.train_steps = list(self.sampler.timesteps) if self.train_timesteps == "sampler" else None

        # parameters initialization
        if config["weight_init"] == "normal":
            self.apply(self._init_weights)
        nn.init.normal_(self.item_embedding.weight, mean=0.0, std=self.embedding_init_std)
        nn.init.normal_(self.position_embedding.weight, mean=0.0, std=self.embedding_init_std)
        nn.init.normal_(self.null_guidance, mean=0.0, std=self.embedding_init_std)
        if self.separate_codes:
            nn.init.normal_(self.item_codes, mean=0.0, std=self.embedding_init_std)
        if self.item_embedding_init == "svd" or self.refit_code_size:
            self.check_svd_group_field(dataset)
        if self.item_embedding_init == "svd":
            matrix = sequential_interaction_matrix(dataset, self, self.svd_group_field)
            # one SVD for both tables: their first min(H, D) columns are the same singular vectors at the same scale
            codes = self._svd_item_codes(matrix, max(self.hidden_size, self.code_size))
            self.item_embedding.weight.data.copy_(codes[:, : self.hidden_size])
            if self.separate_codes:
                self.item_codes.data.copy_(codes[:, : self.code_size])

    @property
    def refit_code_size(self):
        """N, the size of the table the refit reads into (0: the model's own codes, through the denoiser)."""
        return 0 if self.table_read is None else self.table_read.codes.shape[1]

    @property
    def refit_features(self):
        """F, the random features of h the refit reads through (0: the affine read)."""
        read = self.denoiser.feature_read if self.table_read is None else self.table_read.feature_read
        return 0 if read is None else read.weight.shape[0]

    @property
    def refit_last_item(self):
        """Whether the refit's table read also takes the history's last item (``refit_last_item``)."""
        return self.table_read is not None and self.table_read.reads_last_item

    @property
    def reads_table(self):
        """Whether the oracle is the refit's read into a table of its own (:class:`TableRead`), fitted."""
        return self.table_read is not None and bool(self.table_read.fitted)

    def set_after_training(self, config):
        """Take ``config``'s settings that act once training has ended: ``refit_last_step`` and, read only with it,
        ``refit_features`` and ``refit_code_size`` (the denoiser's :class:`RandomFeatureRead`, or a
        :class:`TableRead` of its own: buffers, zero and off until :meth:`finish_training` fits them, so training
        and its random draws are the same with or without them), and, read only with a table, ``refit_last_item``
        and its ridge ``refit_last_item_ridge``, lags ``refit_last_item_lags`` and decay ``refit_last_item_decay``.
        A config older than a key has None there: off (the ridge: 1, the one ridge of the refits before the key; one
        lag, the last item alone).
        Called when the model is built, and for a model already trained whose checkpoint is finished again under
        other such settings (``benchmarks/refit_checkpoint.py``, ``compare.py``)."""
        self.refit_last_step = bool(config["refit_last_step"])
        features = (config["refit_features"] or 0) if self.refit_last_step else 0
        # at most one code per item: N >= n_items is the full-rank table
        table_size = min(config["refit_code_size"] or 0, self.n_items) if self.refit_last_step else 0
        last_item = bool(config["refit_last_item"]) and table_size > 0
        ridge, lags, decay = (config[key] for key in ("refit_last_item_ridge", "refit_last_item_lags",
                                                      "refit_last_item_decay"))
        self.refit_last_item_ridge = 1.0 if ridge is None else float(ridge)
        # the items read into T's rows: the last, weighted 1, and the lags - 1 before it, weighted decay^k
        lags = 1 if lags is None else int(lags)
        self.recent_weights = [(0.0 if decay is None else float(decay)) ** k for k in range(lags)]  # 0^0 = 1
        if (features, table_size, last_item) != (self.refit_features, self.refit_code_size, self.refit_last_item):
            device = self.null_guidance.device
            table = TableRead(self.hidden_size, self.n_items, table_size, features, last_item) if table_size else None
            self.table_read = None if table is None else table.to(device)
            read = RandomFeatureRead(self.hidden_size, self.code_size, features) if features and not table else None
            self.denoiser.feature_read = None if read is None else read.to(device)

    def check_svd_group_field(self, dataset):
        """Raise a one-line ConfigError where ``svd_group_field`` names a field ``dataset`` has not loaded."""
        field = self.svd_group_field
        if field is not None and field not in dataset.field2type:
            raise ConfigError(
                f"DreamRec: svd_group_field {field!r} is not a loaded field (loaded: "
                f"{sorted(dataset.field2type)}); add it to load_col or leave svd_group_field at ~"
            )

    def _svd_item_codes(self, matrix, dim):
        """Item codes from the truncated SVD of the training user-item matrix (see :mod:`item_init`)."""
        generator = torch.Generator().manual_seed(self.svd_seed)
        return svd_item_codes(matrix, dim, self.embedding_init_std, generator)

    @property
    def ranking_codes(self):
        """The codes items are ranked by, ``[n_items N]``: the refit's table where the oracle reads it
        (:attr:`reads_table`), else :attr:`codes`."""
        return self.table_read.codes if self.reads_table else self.codes

    @property
    def codes(self):
        """The item codes, ``[n_items D]``: the diffusion's clean samples x_0 and what oracles are ranked against
        (the item embeddings themselves when ``code_size`` is 0, as in the paper)."""
        return self.item_codes if self.separate_codes else self.item_embedding.weight

    def _init_weights(self, module):
        """Initialize the encoder and denoiser weights as RecBole's SASRec does (a GRU's as GRU4Rec does)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        if isinstance(module, nn.GRU):  # as RecBole's GRU4Rec
            for name, weight in module.named_parameters():
                if name.startswith("weight"):
                    nn.init.xavier_uniform_(weight)

    def forward(self, item_seq, item_seq_len):
        """The guidance vector h ``[B H]``: the encoder's output at the last real position of the history.

        Same value as SASRec's ``trm_encoder(...)[-1]`` gathered at ``item_seq_len - 1``, computed faster.
        """
        return self.encode(item_seq, (item_seq_len - 1).unsqueeze(1)).squeeze(1)  # [B H]

    def encode(self, item_seq, positions):
        """The encoder's output at ``positions`` ``[B C]`` of each row, ``[B C H]``.

        Every encoder is causal: position j sees the items at positions 0 .. j only, so its output is the guidance
        vector of the history made of the row's first j + 1 items (what :meth:`forward` gives that history).
        """
        if self.encoder_type == "gru":
            return self.gru_encoder(self.item_embedding(item_seq), positions)  # [B C H]
        position_ids = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device)
        position_ids = position_ids.unsqueeze(0).expand_as(item_seq)  # [B L]
        input_emb = self.item_embedding(item_seq) + self.position_embedding(position_ids)  # [B L H]
        if self.encoder_type == "paper":
            return self.paper_encoder(input_emb, item_seq, positions)  # [B C H]
        input_emb = self.dropout(self.LayerNorm(input_emb))

        extended_attention_mask = self.get_attention_mask(item_seq)  # [B 1 L L]
        hidden_states = input_emb
        for layer in self.trm_encoder.layer[:-1]:
            hidden_states = layer(hidden_states, extended_attention_mask)  # [B L H]
        # the last layer runs at the asked positions alone
        return transformer_layer_at(
            self.trm_encoder.layer[-1], hidden_states, extended_attention_mask, positions
        )  # [B C H]

    def training_targets(self, interaction):
        """The guidance vectors ``[M H]`` and the target items ``[M]`` of a training batch.

        A batch of RecBole's rows holds one target per row (M = B); a batch of training windows
        (:mod:`recbole_dreamrec.data`) holds ``window_targets`` per row, the last positions of the window: position
        j's history is the window's first j + 1 items, its target the next item (the row's own at the end).
        """
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        target = interaction[self.POS_ITEM_ID]
        if WINDOW_TARGETS_FIELD not in interaction:
            return self.forward(item_seq, item_seq_len), target  # [B H], [B]
        positions, counts = window_positions(item_seq_len, interaction[WINDOW_TARGETS_FIELD])  # [B C], [B C]
        h = self.encode(item_seq, positions)  # [B C H]
        targets = next_items(item_seq, item_seq_len, target).gather(1, positions)  # [B C]
        return h[counts], targets[counts]  # [M H], [M]

    def training_last_items(self, interaction, lags=1):
        """The last item of each history of a training batch and the ``lags - 1`` before it, ``[M lags]`` (see
        :func:`recent_items`), in the order of :meth:`training_targets`."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        if WINDOW_TARGETS_FIELD not in interaction:
            return last_items(item_seq, item_seq_len, lags)  # [B lags]
        positions, counts = window_positions(item_seq_len, interaction[WINDOW_TARGETS_FIELD])  # [B C], [B C]
        return recent_items(item_seq, positions, lags)[counts]  # [M lags]: position j's history ends with item j

    def calculate_loss(self, interaction):
        h, target = self.training_targets(interaction)  # [M H], [M]
        h = drop_guidance(h, self.null_guidance, self.uncond_prob)  # [M H]

        x_start = self.codes[target]  # [M D]
        if self.detach_target:
            x_start = x_start.detach()
        t = self.diffusion.sample_timesteps(x_start.shape[0], x_start.device, self.train_steps)  # [M]
        return self.diffusion.training_loss(
            lambda x_t, step: self.denoiser(x_t, h, step), x_start, t, loss_type=self.diffusion_loss_type
        )

    @property
    def finishes_training(self):
        """Whether :meth:`finish_training` changes the trained weights (``refit_last_step``)."""
        return self.refit_last_step

    def finish_training(self, train_data):
        """What follows training, on the weights to be tested (``quick_start`` calls it): with ``refit_last_step``,
        the last diffusion step's read refit by least squares over the training targets of ``train_data`` (the
        training loader), the encoder fixed (:mod:`~recbole_dreamrec.model.refit`).

        Returns:
            bool: whether the weights changed.
        """
        if not self.refit_last_step:
            return False
        if self.table_read is not None:  # the table: SVD codes of the training data, as item_embedding_init's
            dataset = train_data._dataset
            self.check_svd_group_field(dataset)
            matrix = sequential_interaction_matrix(dataset, self, self.svd_group_field)
            self.table_read.codes.copy_(self._svd_item_codes(matrix, self.refit_code_size))
        count = refit_last_step(self, train_data, seed=self.sampling_seed, last_item_ridge=self.refit_last_item_ridge,
                                recent_weights=self.recent_weights)
        getLogger().info(f"refit_last_step: the last step refit by least squares over {count} training targets")
        return True

    def guided_denoise_fn(self, h):
        r"""``(x_t, t) -> x0`` with classifier-free guidance; conditional and unconditional run as one batch."""
        if self.guidance_weight == 0:
            return lambda x_t, t: self.denoiser(x_t, h, t)
        h_both = torch.cat([h, self.null_guidance.expand_as(h)], dim=0)  # [2B H]

        def denoise_fn(x_t, t):
            x_start = self.denoiser(torch.cat([x_t, x_t], dim=0), h_both, torch.cat([t, t], dim=0))  # [2B H]
            x_start_cond, x_start_uncond = x_start.chunk(2, dim=0)  # [B H], [B H]
            return classifier_free_guidance(x_start_cond, x_start_uncond, self.guidance_weight)

        return denoise_fn

    @torch.no_grad()
    def generate(self, item_seq, item_seq_len, seed=None):
        """Oracle-item embeddings by guided reverse diffusion, ``[B D]``.

        Each row's sampling noise is keyed to its own history and ``seed`` (default ``config['seed']``;
        :mod:`recbole_dreamrec.model.noise`), so a row's oracle does not depend on the other rows of the batch,
        ``eval_batch_size``, the number of processes, full-sort vs. sampled evaluation or what ran before; rows with
        the same history get the same oracle, and each distinct history is sampled once.

        With ``generation_samples`` S > 1, S oracles are generated per history (sample s with seed ``seed + s``,
        so sample 0 is the single-sample oracle) and their mean is returned: an estimate of the model's conditional
        mean, which is what a dot-product ranking can read (see the README).
        """
        seed = self.sampling_seed if seed is None else seed
        histories = torch.cat([item_seq, item_seq_len.unsqueeze(-1)], dim=-1)  # [B L+1]
        unique_histories, inverse = torch.unique(histories, dim=0, return_inverse=True)  # [U L+1], [B]
        unique_seq, unique_len = unique_histories[:, :-1], unique_histories[:, -1]
        h = self.forward(unique_seq, unique_len)  # [U H]
        if self.reads_table:  # the refit's read into its table, x_T not read: every sample the same
            uncond = self.table_read(self.null_guidance.unsqueeze(0))  # [1 N]: the same for every row
            recent = last_items(unique_seq, unique_len, len(self.recent_weights))  # [U K]
            cond = self.table_read(h, recent, self.recent_weights)  # [U N]
            return classifier_free_guidance(cond, uncond, self.guidance_weight)[inverse]  # [B N]
        samples = self.generation_samples
        keys = history_keys(unique_seq, unique_len, [seed + s for s in range(samples)]).flatten()  # [S*U]
        h_all = h.repeat(samples, 1)  # [S*U H], sample-major
        shape = (h_all.shape[0], self.code_size)
        oracle = self.sampler.sample(self.guided_denoise_fn(h_all), shape, h.device, noise=KeyedNoise(keys))
        oracle = oracle.view(samples, h.shape[0], self.code_size).mean(dim=0)  # [U D]
        return oracle[inverse]  # [B D]

    def predict(self, interaction):
        oracle = self.generate(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])  # [B D]
        test_item_codes = self.ranking_codes[interaction[self.ITEM_ID]]  # [B D]
        return torch.mul(oracle, test_item_codes).sum(dim=1)  # [B]

    def full_sort_predict(self, interaction):
        oracle = self.generate(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])  # [B D]
        return torch.matmul(oracle, self.ranking_codes.transpose(0, 1))  # [B n_items]

    def mean_item_embedding_norm(self):
        """Mean L2 norm of the real items' codes (a shrinking value means the codes collapse)."""
        return self.codes[1:].detach().norm(dim=-1).mean().item()
