"""The inspection tool on a tiny trained DreamRec (and SASRec for the side-by-side map)."""

import json
import math

import pytest
import torch

from recbole_dreamrec import run_recbole_dreamrec
from recbole_dreamrec.analysis.inspection import Inspector, inspect_users, nearest_items
from recbole_dreamrec.inspection_cli import main
from recbole_dreamrec.model.samplers import build_sampler
from recbole_dreamrec.analysis.readout import readout_scores


@pytest.fixture(scope="module")
def checkpoints(tiny_config_dict, tmp_path_factory):
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("inspect"))
    try:
        config = {**tiny_config_dict, "epochs": 1}
        return {m: run_recbole_dreamrec(m, "ml-100k-tiny", config_dict=config)["model_file"] for m in ("DreamRec", "SASRec")}
    finally:
        os.chdir(cwd)


def test_oracle_report_has_documented_fields(checkpoints, tmp_path):
    out = tmp_path / "report.json"
    report = main(["oracle", "--model_file", checkpoints["DreamRec"], "--users", "1,7", "--history", "50,172,133",
                   "--topk", "5", "--samples", "3", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert set(report["typical_distances"]) == {"median_pairwise", "median_nearest_neighbour"}
    assert [r.get("user") for r in report["results"]] == ["1", "7", None]
    assert report["results"][2]["given_history"] == ["50", "172", "133"]
    assert [d["item"] for d in report["results"][2]["history"]] == ["50", "172", "133"]
    for r in report["results"]:
        assert [x["rank"] for x in r["recommendations"]] == [1, 2, 3, 4, 5]
        scores = [x["score"] for x in r["recommendations"]]
        assert scores == sorted(scores, reverse=True)
        assert not {x["item"] for x in r["recommendations"]} & {d["item"] for d in r["history"]}
        assert set(r["oracle"]) >= {"norm", "nearest_item", "nearest_distance", "distance_over_median_pairwise"}
        assert r["stability"]["samples"] == 3
    # the stability of user 1, recomputed from three generations with consecutive seeds
    inspector = Inspector(checkpoints["DreamRec"])
    item_seq, length = inspector.user_history("1")
    top_sets = []
    for s in range(3):
        oracle = inspector.model.generate(item_seq.unsqueeze(0), torch.tensor([length]), seed=inspector.config["seed"] + s)
        scores = (oracle @ inspector.model.codes.T)[0]
        scores[0], scores[item_seq[:length]] = -float("inf"), -float("inf")
        top_sets.append(set(scores.topk(5).indices.tolist()))
    overlap = sum(len(top_sets[i] & top_sets[j]) / 5 for i in range(3) for j in range(i + 1, 3)) / 3
    assert report["results"][0]["stability"]["mean_topk_overlap"] == pytest.approx(overlap)
    assert [d["item"] for d in report["results"][0]["stability"]["in_every_topk"]] == inspector.item_tokens(
        sorted(set.intersection(*top_sets)))


def test_oracle_report_of_a_model_that_reads_a_table_of_its_own_ranks_as_the_model(tiny_config_dict, in_tmp_dir):
    """A refit that reads into a table of its own (``refit_code_size``) ranks items by that table: the report's
    recommendations are the model's own full-sort top-k, and the oracle's nearest item is measured in that table."""
    from recbole.data.interaction import Interaction

    settings = {**tiny_config_dict, "epochs": 1, "sampling_steps": 1, "refit_last_step": True, "refit_code_size": 24}
    model_file = run_recbole_dreamrec("DreamRec", "ml-100k-tiny", config_dict=settings)["model_file"]
    report = main(["oracle", "--model_file", model_file, "--users", "1", "--topk", "5", "--samples", "2"])
    inspector = Inspector(model_file)
    model = inspector.model
    assert model.reads_table and inspector.real_items().shape[1] == 24
    item_seq, length = inspector.user_history("1")
    with torch.no_grad():
        scores = model.full_sort_predict(Interaction({model.ITEM_SEQ: item_seq[None], model.ITEM_SEQ_LEN: torch.tensor([length])}))[0]
    scores[0], scores[item_seq[:length]] = -float("inf"), -float("inf")
    expected = inspector.describe(scores.topk(5).indices.tolist())
    assert [r["item"] for r in report["results"][0]["recommendations"]] == [d["item"] for d in expected]
    # decode's generated row is the model's own evaluation there too (the checkpoint's w is 8, the default)
    from recbole_dreamrec.analysis.evaluation import evaluate_checkpoint

    own = evaluate_checkpoint(model_file, split="valid")[0]
    (row,) = main(["decode", "--model_file", model_file, "--oracles", "generated", "--guidance_weights", "8",
                   "--decodings", "dot"])
    assert {k: row[k] for k in ("ndcg@10", "hit@10")} == {k: own[k] for k in ("ndcg@10", "hit@10")}


def test_sample_zero_is_the_evaluation_generation(checkpoints):
    inspector = Inspector(checkpoints["DreamRec"])
    item_seq, length = inspector.user_history("1")
    oracle = inspector.oracles(item_seq, length, samples=1, seed=inspector.config["seed"])[0]
    # what the evaluation generates for that user, inside the whole test batch (other users around it)
    model = inspector.model
    batch = next(iter(inspector.test_data))[0]
    uid = inspector.dataset.token2id(inspector.dataset.uid_field, "1")
    row = int((batch[inspector.dataset.uid_field] == uid).nonzero()[0])
    assert len(batch) > 1
    in_batch = model.generate(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])[row]
    torch.testing.assert_close(oracle, in_batch, rtol=1e-5, atol=1e-5)


def test_nearest_item_agrees_with_brute_force(checkpoints):
    inspector = Inspector(checkpoints["DreamRec"])
    items = inspector.real_items()
    oracle = inspector.oracles(*inspector.user_history("3"), samples=1, seed=0)[0]
    index, distance = nearest_items(oracle, items)
    brute = [((oracle - item) ** 2).sum().sqrt().item() for item in items]
    assert int(index[0]) == min(range(len(brute)), key=brute.__getitem__)
    assert distance[0].item() == pytest.approx(min(brute), rel=1e-5)


def test_unknown_user_and_item_are_clear_errors(checkpoints):
    with pytest.raises(ValueError, match="unknown user '99999'"):
        inspect_users(checkpoints["DreamRec"], users=["99999"])
    with pytest.raises(ValueError, match="unknown item in history"):
        inspect_users(checkpoints["DreamRec"], history=["not-an-item"])


def test_embedding_map_png(checkpoints, tmp_path):
    out = tmp_path / "map.png"
    main(["map", "--model_files", checkpoints["DreamRec"], checkpoints["SASRec"], "--out", str(out),
          "--users", "20", "--method", "pca"])
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_project_to_two_dimensions(method):
    import numpy as np

    from recbole_dreamrec.analysis.inspection import project

    points = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    assert project(points, method, seed=0).shape == (40, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        project(points, "umap", seed=0)


def test_readout_scores_hand_computed_and_exact_for_orthogonal_codes():
    codes = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    p = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    # mean code = 0.5*(1,0) + 0.25*(1,1) + 0.25*(0,2) = (0.75, 0.75)
    torch.testing.assert_close(readout_scores(codes, p), torch.tensor([0.75, 1.5, 1.5], dtype=torch.float64))
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    p = torch.rand(6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(readout_scores(q, p), p)  # orthonormal codes read the distribution back exactly
    rows = torch.stack([torch.tensor([0.5, 0.25, 0.25]), torch.tensor([0.0, 0.0, 1.0])]).double()  # one p per user
    torch.testing.assert_close(readout_scores(codes, rows), torch.tensor([[0.75, 1.5, 1.5], [0.0, 2.0, 4.0]]).double())


def test_readout_cli_table(checkpoints, tmp_path):
    out = tmp_path / "readout.md"
    rows = main(["readout", "--model_file", checkpoints["DreamRec"], "--dims", "8,16", "--out", str(out)])
    assert [(r["codes"], r["dim"]) for r in rows[:5]] == [
        ("exact (one dimension per item)", rows[0]["dim"]), ("random N(0, 1)", 8), ("svd", 8),
        ("random N(0, 1)", 16), ("svd", 16),
    ]
    assert rows[5]["codes"] == "DreamRec checkpoint's item codes" and rows[5]["dim"] == 64
    assert all(0.0 <= r["ndcg@10"] <= r["hit@10"] <= 1.0 for r in rows)
    assert out.read_text().startswith("| codes | dim | test ndcg@10 | test hit@10 |")


def test_mean_code_readout_reads_the_softmax_of_the_models_scores():
    from recbole_dreamrec.analysis.readout import MeanCodeReadout

    class Scores(torch.nn.Module):
        def full_sort_predict(self, interaction):  # item 0 is the padding id: never part of the distribution
            return torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, math.log(3.0)]])

    readout = MeanCodeReadout(Scores())
    readout.codes = torch.tensor([[7.0, 7.0], [1.0, 0.0], [1.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    # p = (0, 1/3, 1/3, 1/3): mean code (2/3, 1); p = (0, 0.2, 0.2, 0.6): mean code (0.4, 1.4)
    expected = torch.tensor([[35 / 3, 2 / 3, 5 / 3, 2.0], [12.6, 0.4, 1.8, 2.8]])
    torch.testing.assert_close(readout.full_sort_predict(None), expected)


def test_mean_code_readout_guidance_and_rank_r_affine_mean_codes_hand_computed():
    from recbole_dreamrec.analysis.readout import MeanCodeReadout, rank_r_affine

    class Scores(torch.nn.Module):
        def full_sort_predict(self, interaction):
            return torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, math.log(3.0)]])

    readout = MeanCodeReadout(Scores())
    readout.codes = torch.tensor([[7.0, 7.0], [1.0, 0.0], [1.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    # mean codes (2/3, 1) and (0.4, 1.4); with w = 2 and m_pop = (1, 0): 3 m_p - 2 m_pop = (0, 3) and (-0.8, 4.2)
    readout.guidance_weight, readout.null_code = 2.0, torch.tensor([1.0, 0.0], dtype=torch.float64)
    expected = torch.tensor([[21.0, 0.0, 3.0, 6.0], [23.8, -0.8, 3.4, 8.4]])
    torch.testing.assert_close(readout.full_sort_predict(None), expected)

    # rank 1 about the mean (0.5, 1.2): the two mean codes differ by (0.2667, -0.4), a single direction, so the
    # rank-1 affine approximation gives them back exactly, and the scores do not change
    readout.collected = []
    readout.affine = rank_r_affine(torch.tensor([[2 / 3, 1.0], [0.4, 1.4]], dtype=torch.float64), 1)
    torch.testing.assert_close(readout.full_sort_predict(None), expected)
    torch.testing.assert_close(torch.cat(readout.collected), torch.tensor([[2 / 3, 1.0], [0.4, 1.4]]).double())

    # three points spread along x, with a small y offset for one of them: rank 1 keeps x and the mean's y
    points = torch.tensor([[-2.0, 0.0], [0.0, 0.3], [2.0, 0.0]], dtype=torch.float64)
    center, directions = rank_r_affine(points, 1)
    torch.testing.assert_close(center, torch.tensor([0.0, 0.1], dtype=torch.float64))
    approx = center + (points - center) @ directions @ directions.T
    torch.testing.assert_close(approx, torch.tensor([[-2.0, 0.1], [0.0, 0.1], [2.0, 0.1]], dtype=torch.float64))
    readout.guidance_weight, readout.affine = 0.0, (center, directions)
    readout.codes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    # mean codes (2/3, 2/3) and (0.8, 0.8) -> (2/3, 0.1) and (0.8, 0.1)
    torch.testing.assert_close(readout.full_sort_predict(None),
                               torch.tensor([[0.0, 2 / 3, 0.1, 2 / 3 + 0.1], [0.0, 0.8, 0.1, 0.9]]))


def test_model_readout_oracle_rank_rows_and_guidance(checkpoints, tmp_path):
    """``--oracle_ranks``: a row per rank below each SVD table's dim, after that table's full row; ranks at or above
    the dim are left out; ``--guidance_weight`` moves the scores; both need ``--distribution model``."""
    base = ["readout", "--model_file", checkpoints["SASRec"], "--distribution", "model", "--split", "valid"]
    out = tmp_path / "readout.md"
    rows = main(base + ["--dims", "3,6", "--oracle_ranks", "1,4", "--out", str(out)])
    assert [(r["codes"], r["dim"], r["rank"]) for r in rows] == [
        ("exact (one dimension per item)", rows[0]["dim"], None), ("random N(0, 1)", 3, None), ("svd", 3, None),
        ("svd", 3, 1), ("random N(0, 1)", 6, None), ("svd", 6, None), ("svd", 6, 1), ("svd", 6, 4),
        ("SASRec checkpoint's item codes", 64, None),
    ]
    # the approximation is applied: on this tiny slice (60 users) the rank-4 row of the 6-d table ranks differently
    assert (rows[7]["ndcg@10"], rows[7]["mrr@10"]) != (rows[5]["ndcg@10"], rows[5]["mrr@10"])
    assert out.read_text().startswith("| codes | dim | oracle rank | valid ndcg@10 | valid hit@10 |")
    assert "| svd | 6 | full |" in out.read_text()
    guided = main(base + ["--dims", "3", "--guidance_weight", "8"])
    assert guided[0]["ndcg@10"] != rows[0]["ndcg@10"]  # exact codes read (9 p - 8 pop): not SASRec's own ranking
    with pytest.raises(SystemExit):
        main(["readout", "--model_file", checkpoints["SASRec"], "--oracle_ranks", "2"])  # popularity distribution


def test_model_readout_exact_codes_give_the_models_own_ranking(checkpoints, tmp_path):
    """``--distribution model``: each user's softmax of a SASRec checkpoint read through code tables. One dimension
    per item reads the distribution back, so that row is SASRec's own validation metrics; a 2-d SVD table cannot."""
    from recbole_dreamrec.analysis.evaluation import Checkpoint

    own = Checkpoint(checkpoints["SASRec"]).metrics(Checkpoint(checkpoints["SASRec"]).valid_data)
    out = tmp_path / "readout.md"
    rows = main(["readout", "--model_file", checkpoints["SASRec"], "--distribution", "model", "--split", "valid",
                 "--dims", "2", "--out", str(out)])
    assert [r["codes"] for r in rows] == ["exact (one dimension per item)", "random N(0, 1)", "svd",
                                          "SASRec checkpoint's item codes"]
    for metric in ("ndcg@10", "hit@10", "mrr@10"):
        assert rows[0][metric] == pytest.approx(own[metric], abs=1e-4)
    assert rows[2]["ndcg@10"] != pytest.approx(own["ndcg@10"], abs=1e-4)
    assert out.read_text().startswith("| codes | dim | valid ndcg@10 | valid hit@10 |")
    with pytest.raises(SystemExit):
        main(["readout", "--model_file", checkpoints["SASRec"], "--distribution", "uniform"])


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_metrics_do_not_depend_on_eval_batch_size(checkpoints, sampler):
    from recbole.data.dataloader import FullSortEvalDataLoader
    from recbole.utils import get_trainer, init_seed

    from recbole_dreamrec.quick_start import load_data_and_model

    config, model, _, _, _, test_data = load_data_and_model(checkpoints["DreamRec"])
    if sampler == "ddpm":
        model.sampler = build_sampler("ddpm", model.diffusion, 1, 1.0)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    results = {}
    for batch_size in (1, 7, 4096):
        config["eval_batch_size"] = batch_size
        loader = FullSortEvalDataLoader(config, test_data._dataset, test_data._sampler, shuffle=False)
        init_seed(batch_size, True)  # a different global random state each time: it must not matter either
        results[batch_size] = trainer.evaluate(loader, load_best_model=False)
    assert results[1] == results[7] == results[4096]
    assert results[1]["hit@20"] > 0  # a real ranking, not an empty evaluation


def test_readout_refuses_an_unknown_split_before_loading_anything(tmp_path):
    from recbole_dreamrec.errors import ConfigError
    from recbole_dreamrec.analysis.evaluation import Checkpoint
    from recbole_dreamrec.analysis.readout import code_readout

    missing = str(tmp_path / "no-such-checkpoint.pth")  # a load would fail with a different error
    with pytest.raises(ConfigError, match="split must be 'valid' or 'test', not 'train'"):
        code_readout(missing, split="train")
    with pytest.raises(ConfigError, match="split must be 'valid' or 'test'"):
        Checkpoint.split_data(None, "training")


def test_natural_parameters_invert_the_mean_map_over_the_real_items(monkeypatch):
    """Maximum-entropy decoding: the mean code of q ∝ exp(E lam) over items 1.. (item 0 is the padding id) gives lam
    back, and the padding item's code, however large, plays no part."""
    from recbole_dreamrec.analysis.readout import natural_parameters

    g = torch.Generator().manual_seed(0)
    codes = torch.randn(7, 3, generator=g, dtype=torch.float64)
    codes[0] = 50.0  # would dominate every mean if item 0 were counted
    lam = 2.0 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    logits = lam @ codes.T
    logits[:, 0] = float("-inf")
    mean = torch.softmax(logits, dim=-1) @ codes
    lam[1], mean[1] = 0.0, codes[1:].mean(dim=0)  # the uniform distribution: converged at the start, the others go on
    torch.testing.assert_close(natural_parameters(mean, codes, ridge=0.0, iters=50, tol=1e-10), lam, atol=1e-5, rtol=0)
    # chunked solving (one row per chunk) gives the same answer
    torch.testing.assert_close(natural_parameters(mean, codes, ridge=0.0, iters=50, tol=1e-10, chunk_floats=9), lam,
                               atol=1e-5, rtol=0)
    # the Hessians' second moments from item blocks (the outer-product table too large to hold) are the same
    from recbole_dreamrec.analysis import readout

    blocked = readout._second_moments
    monkeypatch.setattr(readout, "_second_moments", lambda q, codes, outer: blocked(q, codes, outer, block=2))
    torch.testing.assert_close(natural_parameters(mean, codes, ridge=0.0, iters=50, tol=1e-10, outer_floats=0),
                               lam, atol=1e-5, rtol=0)
    monkeypatch.undo()
    q = torch.softmax(torch.randn(2, 7, generator=g, dtype=torch.float64), dim=-1)
    exact = torch.einsum("aj,jd,je->ade", q, codes, codes)
    torch.testing.assert_close(blocked(q, codes, None, block=3), exact)
    torch.testing.assert_close(blocked(q, codes, readout._outer_products(codes)), exact)
    # a ridge shrinks lam towards 0: a flatter distribution, the same direction for this well-posed mean
    ridged = natural_parameters(mean, codes, ridge=1.0, iters=50, tol=1e-10)
    assert (ridged[[0, 2, 3]].norm(dim=-1) < lam[[0, 2, 3]].norm(dim=-1)).all()
    torch.testing.assert_close(ridged[1], lam[1])  # the uniform distribution stays at lam = 0


def test_maxent_decoding_ranks_by_the_distribution_where_the_dot_product_does_not():
    """A distribution of the codes' exponential family, p ∝ exp(e_j . lam): maximum-entropy decoding of its mean code
    scores items by e_j . lam, the log-probabilities up to a constant; the dot product with the mean code,
    (1.04, 0.46), puts item 2 (score 2.28) before the most likely item 3 (2.01)."""
    from recbole_dreamrec.analysis.readout import MeanCodeReadout

    codes = torch.tensor([[0.0, 0.0], [-0.6, -2.4], [2.1, -1.3], [1.1, 1.1], [-0.8, -2.1]], dtype=torch.float64)
    lam = torch.tensor([[2.6, 1.5]], dtype=torch.float64)
    logits = (lam @ codes.T).float()  # [1 5]: items 1-4 -5.16, 3.51, 4.51, -5.23; p(3) = 0.73, p(2) = 0.27

    class Scores(torch.nn.Module):
        def full_sort_predict(self, interaction):
            return logits

    readout = MeanCodeReadout(Scores())
    readout.codes = codes
    dot = readout.full_sort_predict(None)
    assert dot[0, 2] > dot[0, 3]  # the dot product ranks item 2 first
    readout.decode = "maxent"
    decoded = readout.full_sort_predict(None)
    # the ridge (1e-3) shrinks lam of so peaked a distribution noticeably, (1.90, 1.21), but keeps its ranking
    assert decoded[0, 1:].argsort(descending=True).tolist() == [2, 1, 0, 3]  # items 3, 2, 1, 4: p's order
    assert decoded[0, 3] > decoded[0, 2]


def test_mean_code_noise_has_the_stated_size_and_is_seeded():
    from recbole_dreamrec.analysis.readout import MeanCodeReadout

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 5, generator=g)

    class Scores(torch.nn.Module):
        def full_sort_predict(self, interaction):
            return logits

    readout = MeanCodeReadout(Scores())
    readout.codes = torch.eye(5, dtype=torch.float64)  # scores = the (perturbed) mean code itself
    readout.null_code = torch.tensor([0.0, 0.25, 0.25, 0.25, 0.25], dtype=torch.float64)
    clean = readout.full_sort_predict(None).double()
    readout.noise = 0.5
    noisy = readout.full_sort_predict(None).double()
    ratio = (noisy - clean).norm(dim=-1) / (clean - readout.null_code).norm(dim=-1)
    assert abs(ratio.mean().item() - 0.5) < 0.05  # expected norm s |m - m_pop| (a chi of 5 dofs: mean 0.94 sqrt 5)
    readout._noise_generator = None
    torch.testing.assert_close(readout.full_sort_predict(None).double(), noisy)  # the same seed, the same draw


def test_model_readout_maxent_and_noise_rows(checkpoints, tmp_path):
    """``--decode maxent`` decodes every table but the exact one (whose mean code is p: same ranking); ``--noise``
    adds rows after each SVD table; both need ``--distribution model``."""
    base = ["readout", "--model_file", checkpoints["SASRec"], "--distribution", "model", "--split", "valid",
            "--dims", "4"]
    dot = main(base)
    out = tmp_path / "readout.md"
    rows = main(base + ["--decode", "maxent", "--noise", "0.5", "--out", str(out)])
    assert [(r["codes"], r["noise"], r["decode"]) for r in rows] == [
        ("exact (one dimension per item)", None, "dot"), ("random N(0, 1)", None, "maxent"),
        ("svd", None, "maxent"), ("svd", 0.5, "maxent"), ("SASRec checkpoint's item codes", None, "maxent"),
    ]
    assert rows[0]["ndcg@10"] == dot[0]["ndcg@10"]  # the exact table: SASRec's own ranking either way
    assert (rows[2]["ndcg@10"], rows[2]["mrr@10"]) != (dot[2]["ndcg@10"], dot[2]["mrr@10"])  # decoding applied
    assert out.read_text().startswith("| codes | dim | noise | decoding | valid ndcg@10 | valid hit@10 |")
    for extra in (["--decode", "maxent"], ["--noise", "0.1"]):
        with pytest.raises(SystemExit):
            main(["readout", "--model_file", checkpoints["SASRec"]] + extra)  # popularity distribution


def test_one_step_oracle_is_the_guided_x0_prediction_from_zero_at_the_last_step(checkpoints):
    from recbole_dreamrec.analysis.evaluation import Checkpoint
    from recbole_dreamrec.analysis.readout import OracleDecoding

    model = Checkpoint(checkpoints["DreamRec"]).model.eval()  # no dropout, as in evaluation
    item_seq = torch.tensor([[5, 9, 2, 0], [7, 0, 0, 0]])
    item_seq_len = torch.tensor([3, 1])
    scored = OracleDecoding(model)
    with torch.no_grad():
        h = model.forward(item_seq, item_seq_len)
        t = torch.full((2,), model.diffusion.num_timesteps - 1)
        cond = model.denoiser(torch.zeros(2, model.code_size), h, t)
        uncond = model.denoiser(torch.zeros(2, model.code_size), model.null_guidance.expand_as(h), t)
        model.guidance_weight = 0.0
        torch.testing.assert_close(scored.one_step_oracle(item_seq, item_seq_len), cond)
        model.guidance_weight = 3.0
        torch.testing.assert_close(scored.one_step_oracle(item_seq, item_seq_len), 4.0 * cond - 3.0 * uncond)
    assert not torch.allclose(cond, uncond)  # the guidance term is not zero


def test_maxent_decoding_of_an_oracle_ranks_by_the_distribution_whose_mean_code_it_is(checkpoints, monkeypatch):
    """An oracle that is the mean code (in the model's own codes) of q ∝ exp(codes . lam) is decoded back to q's
    ranking of the real items; the dot product ranks otherwise."""
    from recbole_dreamrec.analysis.evaluation import Checkpoint
    from recbole_dreamrec.analysis.readout import OracleDecoding

    model = Checkpoint(checkpoints["DreamRec"]).model.eval()
    codes = model.codes.detach().double()
    lam = torch.randn(3, codes.shape[1], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lam = lam / (lam @ codes[1:].T).std(dim=1, keepdim=True)  # log q spread with standard deviation 1
    logits = lam @ codes.T
    logits[:, 0] = float("-inf")
    mean = (torch.softmax(logits, dim=-1) @ codes).float()
    scored = OracleDecoding(model)
    monkeypatch.setattr(OracleDecoding, "one_step_oracle", lambda self, seq, length: mean)
    interaction = {model.ITEM_SEQ: torch.zeros(3, 4, dtype=torch.long), model.ITEM_SEQ_LEN: torch.ones(3, dtype=torch.long)}
    scored.decode = "maxent"
    decoded = scored.full_sort_predict(interaction)

    def correlation(scores):  # per row, over the real items
        a, b = scores[:, 1:].double(), logits[:, 1:]
        a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
        return ((a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))).tolist()

    assert min(correlation(decoded)) > 0.999  # log q up to a constant (and the ridge's slight shrinking)
    scored.decode = "dot"
    dot = scored.full_sort_predict(interaction)
    torch.testing.assert_close(dot, mean @ model.codes.detach().T)
    assert max(correlation(dot)) < 0.99


def test_maxent_lambda_guides_the_natural_parameters_of_the_two_predictions(checkpoints, monkeypatch):
    """``maxent-lambda`` decodes the conditional and the unconditional one-step predictions apart and guides their
    natural parameters: (1 + w) lam(cond) - w lam(uncond). At w = 0 it is ``maxent`` of the one-step oracle."""
    from recbole_dreamrec.analysis.evaluation import Checkpoint
    from recbole_dreamrec.analysis.readout import OracleDecoding, natural_parameters

    model = Checkpoint(checkpoints["DreamRec"]).model.eval()
    codes = model.codes.detach().double()
    g = torch.Generator().manual_seed(2)
    cond = (torch.softmax(torch.randn(3, codes.shape[0], generator=g, dtype=torch.float64), -1) @ codes).float()
    uncond = codes[1:].mean(dim=0).float().expand(3, -1)  # the same prediction for every row, as f(0, null, T) is
    monkeypatch.setattr(OracleDecoding, "one_step_parts", lambda self, seq, length: (cond, uncond))
    interaction = {model.ITEM_SEQ: torch.zeros(3, 4, dtype=torch.long),
                   model.ITEM_SEQ_LEN: torch.ones(3, dtype=torch.long)}
    scored = OracleDecoding(model)
    model.guidance_weight = 2.0
    scored.decode = "maxent-lambda"
    lam = 3.0 * natural_parameters(cond.double(), codes) - 2.0 * natural_parameters(uncond[:1].double(), codes)
    torch.testing.assert_close(scored.full_sort_predict(interaction), (lam @ codes.T).float())
    # x0-level guidance decoded afterwards is another thing: its guided mean code leaves the hull
    scored.decode = "maxent"
    assert not torch.allclose(scored.full_sort_predict(interaction), (lam @ codes.T).float(), atol=1e-3)
    model.guidance_weight = 0.0
    torch.testing.assert_close(scored.full_sort_predict(interaction),
                               (natural_parameters(cond.double(), codes) @ codes.T).float())
    scored.decode = "maxent-lambda"
    torch.testing.assert_close(scored.full_sort_predict(interaction),
                               (natural_parameters(cond.double(), codes) @ codes.T).float())


def test_least_squares_read_is_the_least_squares_fit_of_the_training_targets_codes_from_their_h(checkpoints):
    """W, c solve min |h W + c - x_0|^2 + ridge |W|^2 over every training target (h in evaluation mode, as the
    oracle reads it; the bias not shrunk), and the oracle is that read with guidance about the mean h."""
    from recbole_dreamrec.analysis.evaluation import Checkpoint
    from recbole_dreamrec.analysis.readout import OracleDecoding, least_squares_read
    from recbole_dreamrec.data import train_loader

    checkpoint = Checkpoint(checkpoints["DreamRec"])
    model, config = checkpoint.model.train(), checkpoint.config
    weight, bias, h_mean = least_squares_read(model, config, checkpoint.train_data, ridge=1.0)
    assert model.training  # left as it was
    model.eval()
    with torch.no_grad():
        pairs = [model.training_targets(batch) for batch in train_loader(config, checkpoint.train_data)]
        h = torch.cat([p[0] for p in pairs]).double()  # [M H]
        x0 = model.codes[torch.cat([p[1] for p in pairs])].double()  # [M D]
    assert h.shape[0] == checkpoint.train_data.dataset.inter_num  # every training target once
    # the ridge as extra rows of the least-squares problem: sqrt(ridge) I on W's rows, nothing on the bias
    H, D = h.shape[1], x0.shape[1]
    design = torch.cat([torch.cat([h, torch.ones(h.shape[0], 1, dtype=torch.float64)], dim=1),
                        torch.cat([torch.eye(H, dtype=torch.float64), torch.zeros(H, 1, dtype=torch.float64)], dim=1)])
    expected = torch.linalg.lstsq(design, torch.cat([x0, torch.zeros(H, D, dtype=torch.float64)])).solution
    torch.testing.assert_close(weight.double(), expected[:-1], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(bias.double(), expected[-1], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(h_mean.double(), h.mean(dim=0), atol=1e-5, rtol=1e-5)
    shrunk, shrunk_bias, _ = least_squares_read(model, config, checkpoint.train_data, ridge=1e4)
    assert shrunk.norm() < 0.5 * weight.norm()
    torch.testing.assert_close(shrunk_bias.double(), x0.mean(dim=0) - h.mean(dim=0) @ shrunk.double(), atol=1e-4,
                               rtol=1e-4)  # unshrunk bias: the fit passes through the means
    scored = OracleDecoding(model)
    scored.least_squares = (weight, bias, h_mean)
    item_seq, item_seq_len = torch.tensor([[5, 9, 2, 0], [7, 0, 0, 0]]), torch.tensor([3, 1])
    with torch.no_grad():
        read = model.forward(item_seq, item_seq_len) @ weight + bias  # [2 D]
        mean_read = h_mean @ weight + bias  # [D]
        model.guidance_weight = 0.0
        torch.testing.assert_close(scored.least_squares_oracle(item_seq, item_seq_len), read)
        model.guidance_weight = 3.0
        torch.testing.assert_close(scored.least_squares_oracle(item_seq, item_seq_len), 4.0 * read - 3.0 * mean_read)


def test_decode_cli_rows_and_the_generated_dot_row_is_the_models_own_evaluation(checkpoints, tmp_path, capsys):
    from recbole_dreamrec.analysis.evaluation import evaluate_checkpoint

    out = tmp_path / "decode.md"
    rows = main(["decode", "--model_file", checkpoints["DreamRec"], "--oracles", "one-step,generated",
                 "--guidance_weights", "0,8", "--out", str(out)])
    assert [(r["oracle"], r["guidance_weight"], r["decode"]) for r in rows] == [
        (o, w, d) for o in ("one-step", "generated") for w in (0.0, 8.0) for d in ("dot", "maxent")]
    own = evaluate_checkpoint(checkpoints["DreamRec"], split="valid")[0]  # the checkpoint's w is 8 (the default)
    generated_dot = rows[6]
    assert {k: generated_dot[k] for k in ("ndcg@10", "hit@10", "mrr@20")} == {k: own[k] for k in
                                                                             ("ndcg@10", "hit@10", "mrr@20")}
    assert rows[0]["ndcg@10"] != rows[1]["ndcg@10"] or rows[0]["mrr@20"] != rows[1]["mrr@20"]  # decoding applied
    # a maxent row holds its difference from the dot row of the same oracle and w, per user, with its paired SE
    for dot, maxent in zip(rows[0::2], rows[1::2]):
        for m in ("ndcg@10", "hit@10"):
            assert abs(maxent[f"{m} vs dot"] - (maxent[m] - dot[m])) <= 1.01e-4  # RecBole rounds to 4 places
            assert maxent[f"{m} vs dot se"] >= 0 and f"{m} vs dot" not in dot
    assert any(r["hit@10 vs dot se"] > 0 for r in rows[1::2])
    # a one-step row holds its difference from the generated row of the same w and decoding; generated rows do not
    for one_step, generated in zip(rows[:4], rows[4:]):
        assert abs(one_step["ndcg@10 vs generated"] - (one_step["ndcg@10"] - generated["ndcg@10"])) <= 1.01e-4
        assert "ndcg@10 vs generated" not in generated
    lines = out.read_text().splitlines()
    assert lines[0] == ("| oracle | w | decoding | valid ndcg@10 | valid hit@10 | ndcg@10 − dot (paired SE) | "
                        "hit@10 − dot (paired SE) | ndcg@10 − generated (paired SE) | hit@10 − generated (paired SE) "
                        "| seconds |")
    assert lines[3].startswith(f"| one-step | 0 | maxent | {rows[1]['ndcg@10']:.4f} | {rows[1]['hit@10']:.4f} | "
                               f"{rows[1]['ndcg@10 vs dot']:+.4f} ({rows[1]['ndcg@10 vs dot se']:.4f}) | ")
    assert lines[2].startswith(f"| one-step | 0 | dot | {rows[0]['ndcg@10']:.4f} | {rows[0]['hit@10']:.4f} |  |  | "
                               f"{rows[0]['ndcg@10 vs generated']:+.4f} ({rows[0]['ndcg@10 vs generated se']:.4f}) | ")
    # the least-squares oracle against the model's own generation, at the checkpoint's w
    fitted = main(["decode", "--model_file", checkpoints["DreamRec"], "--oracles", "least-squares,generated",
                   "--guidance_weights", "8", "--decodings", "dot"])
    assert [r["oracle"] for r in fitted] == ["least-squares", "generated"]
    assert fitted[1]["ndcg@10"] == generated_dot["ndcg@10"]
    assert abs(fitted[0]["hit@10 vs generated"] - (fitted[0]["hit@10"] - fitted[1]["hit@10"])) <= 1.01e-4
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["decode", "--model_file", checkpoints["DreamRec"], "--oracles", "mean"])
    assert "oracle must be among ['one-step', 'generated', 'least-squares'], got ['mean']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["decode", "--model_file", checkpoints["DreamRec"], "--oracles", "generated", "--decodings", "maxent-lambda"])
    assert "decode maxent-lambda guides the one-step oracles' natural parameters" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["decode", "--model_file", checkpoints["SASRec"]])
    assert "is a SASRec checkpoint: oracles are DreamRec's" in capsys.readouterr().err
    # other columns: those the checkpoint evaluates; another is refused before any evaluation
    rows = main(["decode", "--model_file", checkpoints["DreamRec"], "--oracles", "generated", "--guidance_weights", "8",
                 "--decodings", "dot", "--metrics", "MRR@20,ndcg@20", "--out", str(out)])
    assert out.read_text().splitlines()[2] == f"| generated | 8 | dot | {own['mrr@20']:.4f} | {own['ndcg@20']:.4f} | " + \
        f"{rows[0]['seconds']:.0f} |"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["decode", "--model_file", checkpoints["DreamRec"], "--metrics", "ndcg@50"])
    assert "metrics ['ndcg@50'] are not evaluated for" in capsys.readouterr().err


def test_per_user_values_average_to_recboles_metrics_and_paired_errors_are_those_of_the_differences(checkpoints):
    """The per-user values behind a paired comparison are RecBole's own (their means are its reported metrics), and
    the paired standard error is that of the per-user differences, not of either metric."""
    import numpy as np

    from recbole_dreamrec.analysis.evaluation import Checkpoint, paired_difference

    checkpoint = Checkpoint(checkpoints["SASRec"])
    names = ["ndcg@10", "hit@10", "mrr@20", "recall@20", "ndcg@20"]
    values, users = checkpoint.user_metrics(checkpoint.valid_data, names)
    assert values == checkpoint.metrics(checkpoint.valid_data)
    for name in names:
        assert len(users[name]) == checkpoint.valid_data.sample_size
        assert round(float(users[name].mean()), 4) == values[name]
    assert set(np.unique(users["hit@10"])) <= {0.0, 1.0} and (users["ndcg@10"] <= users["hit@10"]).all()
    # the difference of two rankings of the same users: its noise is that of the per-user differences
    a, b = np.array([1.0, 0.0, 1.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
    assert paired_difference(a, b) == (0.25, 0.25)  # differences 0, 0, 1, 0: mean 1/4, std 1/2, / sqrt(4)
    assert paired_difference(a, a) == (0.0, 0.0)
    with pytest.raises(Exception, match="not a top-k metric"):
        checkpoint.user_metrics(checkpoint.valid_data, ["ndcg@50"])
