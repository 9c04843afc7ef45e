"""End to end through the quick-start API and the CLI on a tiny slice of ml-100k: train, validate, test, reload."""

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recbole_dreamrec import load_data_and_model, run_recbole_dreamrec
from recbole_dreamrec.cli import main, parse_args
from recbole_dreamrec.quick_start import checkpoint_device
from recbole_dreamrec.trainer import instrument
from recbole_dreamrec.utils import get_trainer

METRICS = {"recall@10", "ndcg@10", "mrr@10", "hit@10", "ndcg@20"}
E2E_EPOCHS = 5  # the margin over a random scorer was measured at 5 epochs (conftest.beats_random_scorer)

RELOAD_AND_TEST = """
import json, sys
import recbole_dreamrec  # registers DreamRec with RecBole and applies the compatibility fixes
from recbole.quick_start import load_data_and_model
from recbole.utils import get_trainer
config, model, dataset, train_data, valid_data, test_data = load_data_and_model(sys.argv[1])
trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
result = trainer.evaluate(test_data, load_best_model=False)
print(json.dumps({k: float(v) for k, v in result.items()}))
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Where the module's DreamRec run writes ``log/`` and ``log_tensorboard/``."""
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def dreamrec_run_and_log(tiny_config_dict, run_dir):
    """The module's DreamRec run and its log messages at INFO (under pytest, whose handlers are installed first,
    RecBole's ``init_logger`` adds no handler of its own: the messages are collected here)."""
    messages = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()))
    root = logging.getLogger()
    level, cwd = root.level, os.getcwd()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    os.chdir(run_dir)
    try:
        result = run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny", config_dict={**tiny_config_dict,
                                                                                             "epochs": E2E_EPOCHS})
    finally:
        os.chdir(cwd)
        root.removeHandler(handler)
        root.setLevel(level)
    return result, messages


@pytest.fixture(scope="module")
def dreamrec_run(dreamrec_run_and_log):
    return dreamrec_run_and_log[0]


def test_dreamrec_trains_validates_and_tests(dreamrec_run, beats_random_scorer):
    assert METRICS <= set(dreamrec_run["test_result"])
    assert METRICS <= set(dreamrec_run["best_valid_result"])
    beats_random_scorer(dreamrec_run["test_result"])
    assert dreamrec_run["best_valid_score"] == dreamrec_run["best_valid_result"]["ndcg@10"]
    assert dreamrec_run["config"]["eval_args"]["split"] == {"LS": "valid_and_test"}
    # one target per user: recall@k is hit@k, and the metrics are ordered as their definitions order them
    test = dreamrec_run["test_result"]
    assert test["recall@10"] == test["hit@10"] and test["recall@20"] == test["hit@20"]
    assert test["mrr@10"] <= test["ndcg@10"] <= test["hit@10"] <= test["hit@20"]


def test_item_embedding_norm_in_the_log_and_tensorboard(dreamrec_run_and_log, run_dir):
    """The mean item-embedding norm after every epoch: in the epoch's log line and as the TensorBoard scalar, the same
    values, the last one the norm of the final weights."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    dreamrec_run, messages = dreamrec_run_and_log
    epoch_lines = [m for m in messages if re.match(r"epoch \d+ training", m)]
    assert len(epoch_lines) == dreamrec_run["epochs_trained"] == E2E_EPOCHS
    logged = [float(re.search(r"item emb norm: (\d+\.\d{4})$", line).group(1)) for line in epoch_lines]
    (events,) = (run_dir / "log_tensorboard").iterdir()
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    scalars = accumulator.Scalars("Train/item_embedding_norm")
    assert [scalar.step for scalar in scalars] == list(range(E2E_EPOCHS))
    assert logged == pytest.approx([scalar.value for scalar in scalars], abs=1e-4)  # the log prints 4 decimals
    final = torch.load(dreamrec_run["last_model_file"], weights_only=False)["state_dict"]["item_embedding.weight"]
    assert scalars[-1].value == pytest.approx(final[1:].norm(dim=-1).mean().item(), rel=1e-6)  # padding excluded


def test_a_run_ends_with_its_result_as_a_plain_table(dreamrec_run_and_log):
    result, messages = dreamrec_run_and_log
    header, valid, test = messages[-1].splitlines()[-3:]
    metrics = header.split()
    assert metrics == list(result["test_result"])
    assert valid.split()[:2] == ["best", "valid"] and test.split()[0] == "test"
    assert [float(v) for v in valid.split()[2:]] == [round(float(result["best_valid_result"][m]), 4) for m in metrics]
    assert [float(v) for v in test.split()[1:]] == [round(float(result["test_result"][m]), 4) for m in metrics]
    assert not any("OrderedDict" in m or "np.float64" in m for m in messages[-3:])


def test_checkpoint_reloads_with_recbole_load_data_and_model(dreamrec_run, tmp_path, package_env):
    """A fresh process, RecBole's own loader: same test metrics as right after training."""
    out = subprocess.run(
        [sys.executable, "-c", RELOAD_AND_TEST, dreamrec_run["model_file"]],
        cwd=tmp_path,
        env=package_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    reloaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert reloaded == pytest.approx({k: float(v) for k, v in dreamrec_run["test_result"].items()})


def test_a_checkpoint_saved_on_a_gpu_loads_and_evaluates_on_the_cpu(dreamrec_run, in_tmp_dir, monkeypatch):
    """A checkpoint as a CUDA run writes it (its tensors tagged for ``cuda:0``, its config naming that device), in
    torch's own format: RecBole's loader cannot read it without a GPU; the plugin's loads it onto the CPU and
    evaluates it to the metrics of the original run."""
    import torch.serialization

    checkpoint = torch.load(dreamrec_run["model_file"], map_location="cpu", weights_only=False)
    config = checkpoint["config"]
    config["device"], config["use_gpu"], config["gpu_id"] = torch.device("cuda:0"), True, "0"
    cuda_file = in_tmp_dir / "DreamRec-cuda.pth"
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")  # as a CUDA tensor's storage
        torch.save(checkpoint, cuda_file, pickle_protocol=4)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(cuda_file, weights_only=False)  # the fixture is what a GPU writes
    device = None if not torch.cuda.is_available() else "cpu"  # without a GPU, the CPU is chosen by itself
    config, model, _, _, _, test_data = load_data_and_model(str(cuda_file), device=device)
    assert config["device"] == torch.device("cpu") and next(model.parameters()).device.type == "cpu"
    trainer = instrument(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)
    result = trainer.evaluate(test_data, load_best_model=False)
    assert dict(result) == pytest.approx({k: float(v) for k, v in dreamrec_run["test_result"].items()})


def test_checkpoint_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert checkpoint_device(torch.device("cuda:0")) == torch.device("cpu")
    assert checkpoint_device("cpu") == torch.device("cpu")
    assert checkpoint_device(torch.device("cuda:0"), "cuda:1") == torch.device("cuda:1")  # asked for: as asked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert checkpoint_device(torch.device("cuda:0")) == torch.device("cuda:0")
    assert checkpoint_device(torch.device("cuda:1")) == torch.device("cpu")  # a GPU this machine lacks


def test_recbole_baseline_through_the_same_entry_point(tiny_config_dict, in_tmp_dir):
    result = run_recbole_dreamrec(
        model="SASRec", dataset="ml-100k-tiny", config_dict={**tiny_config_dict, "epochs": 1}, saved=False
    )
    assert METRICS <= set(result["test_result"])
    test = result["test_result"]
    assert test["recall@10"] == test["hit@10"] and test["mrr@10"] <= test["ndcg@10"] <= test["hit@10"]
    assert result["config"]["train_neg_sample_args"]["distribution"] == "none"  # CE model: no negatives
    assert result["config"]["eval_args"]["split"] == {"LS": "valid_and_test"}


def test_cli_runs_with_config_file_and_key_value_flags(tiny_config_dict, in_tmp_dir):
    config_file = in_tmp_dir / "tiny.yaml"
    config_file.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in tiny_config_dict.items()))
    result = main(
        ["--model=DreamRec", "-d", "ml-100k-tiny", f"--config_files={config_file}", "--epochs=1", "--sampler=ddim"]
    )
    assert result["config"]["sampler"] == "ddim" and result["config"]["epochs"] == 1
    assert METRICS <= set(result["test_result"])
    # the same settings through the Python API: the same run, the same numbers
    api = run_recbole_dreamrec("DreamRec", "ml-100k-tiny", config_dict={**tiny_config_dict, "epochs": 1, "sampler": "ddim"})
    assert (result["best_valid_result"], result["test_result"]) == (api["best_valid_result"], api["test_result"])


def test_cli_process_flags_reach_quick_start_run(monkeypatch):
    import recbole_dreamrec.cli as cli

    calls = []
    monkeypatch.setattr(cli, "run", lambda **kwargs: calls.append(kwargs) or "result")
    argv = ["-m", "SASRec", "--nproc=4", "--world_size=8", "--ip=10.0.0.1", "--port=6001", "--group_offset=4",
            "--config_files", "a.yaml b.yaml", "--epochs=3"]
    assert cli.main(argv) == "result"
    assert calls[0] == {
        "model": "SASRec", "dataset": "ml-100k", "config_file_list": ["a.yaml", "b.yaml"], "config_dict": {"epochs": "3"},
        "nproc": 4, "world_size": 8, "ip": "10.0.0.1", "port": "6001", "group_offset": 4,
    }
    cli.main(["--nproc", "2"])  # two local processes, world size from nproc (run's -1)
    assert {k: calls[1][k] for k in ("nproc", "world_size", "ip", "port", "group_offset")} == {
        "nproc": 2, "world_size": -1, "ip": "localhost", "port": "5678", "group_offset": 0,
    }


def test_console_script_is_installed_and_prints_help(package_env):
    from importlib.metadata import entry_points

    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "recbole-dreamrec"]
    assert script.value == "recbole_dreamrec.cli:main" and script.load() is main
    path = shutil.which("recbole-dreamrec", path=str(Path(sys.executable).parent)) or shutil.which("recbole-dreamrec")
    assert path, "the recbole-dreamrec script is not installed next to this Python"
    out = subprocess.run([path, "--help"], env=package_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for flag in ("--model", "--dataset", "--config_files", "--nproc", "--world_size", "--group_offset"):
        assert flag in out.stdout


def test_sampled_uni100_evaluation_ranks_as_the_full_sort_scores(tiny_config_dict, in_tmp_dir):
    """``eval_args.mode: uni100`` through RecBole's loader and ``predict``: each user's target against 100 sampled
    items. The metrics RecBole reports equal those of ranking the same candidates by ``full_sort_predict``."""
    from recbole.quick_start import load_data_and_model
    from recbole.utils import get_trainer, init_seed

    settings = {
        **tiny_config_dict, "epochs": 1, "eval_batch_size": 8192,  # all 60 users x 101 candidates in one batch
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni100"},
    }
    result = run_recbole_dreamrec("DreamRec", "ml-100k-tiny", config_dict=settings)
    config, model, _, _, _, test_data = load_data_and_model(result["model_file"])
    assert type(test_data).__name__ == "NegSampleEvalDataLoader" and test_data.times == 101
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    init_seed(config["seed"], config["reproducibility"])
    reported = trainer.evaluate(test_data, load_best_model=False)
    init_seed(config["seed"], config["reproducibility"])  # the same negative samples again
    (batch,) = list(test_data)
    interaction, row_user, positive_user, positive_item = batch
    users = row_user.unique()
    assert len(users) == 60 and positive_user.tolist() == users.tolist()
    first_rows = torch.stack([(row_user == u).nonzero()[0, 0] for u in users])
    with torch.no_grad():
        scores = model.full_sort_predict(interaction[first_rows])  # [users n_items]
    hits, ndcg = [], []
    for u in users.tolist():
        candidates = interaction[model.ITEM_ID][row_user == u]
        assert len(candidates) == 101 and candidates[0] == positive_item[u]
        candidates = candidates.unique()  # negatives are drawn with replacement; RecBole scores each item once
        rank = 1 + int((scores[u, candidates] > scores[u, positive_item[u]]).sum())
        hits.append(rank <= 10)
        ndcg.append(1 / math.log2(rank + 1) if rank <= 10 else 0.0)
    assert reported["hit@10"] == pytest.approx(sum(hits) / 60, abs=0.5e-4)  # RecBole rounds to 4 decimals
    assert reported["ndcg@10"] == pytest.approx(sum(ndcg) / 60, abs=0.5e-4)


def test_cli_defaults_and_extra_settings():
    args, config_dict = parse_args([])
    assert (args.model, args.dataset, args.config_files) == ("DreamRec", "ml-100k", None)
    args, config_dict = parse_args(["-m", "SASRec", "--config_files", "a.yaml b.yaml", "--guidance_weight=4"])
    assert args.model == "SASRec" and args.config_files == "a.yaml b.yaml"
    assert config_dict == {"guidance_weight": "4"}
    with pytest.raises(SystemExit):
        parse_args(["--guidance_weight", "4"])  # extra settings must be --key=value


def test_refit_last_step_rewrites_the_best_checkpoint_and_the_run_reports_the_refit_model(tiny_config_dict, in_tmp_dir):
    """With ``refit_last_step`` the run trains exactly as without it, then refits the last step of its best
    checkpoint (encoder untouched, null vector = mean h), saves it there, and reports that model's validation and
    test: what ``load_data_and_model`` gives back evaluates to the same numbers."""
    from recbole_dreamrec.analysis.evaluation import evaluate_checkpoint

    settings = {**tiny_config_dict, "epochs": 2, "sampling_steps": 1, "guidance_weight": 4.0}
    plain = run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny", config_dict=settings)
    refit = run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny",
                                 config_dict={**settings, "refit_last_step": True})
    before = torch.load(plain["model_file"], weights_only=False)["state_dict"]
    after = torch.load(refit["model_file"], weights_only=False)["state_dict"]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"denoiser.net.weight", "denoiser.net.bias", "null_guidance"}
    assert refit["best_valid_result"] != plain["best_valid_result"]
    valid, test = (evaluate_checkpoint(refit["model_file"], split=split)[0] for split in ("valid", "test"))
    assert {k: valid[k] for k in refit["best_valid_result"]} == dict(refit["best_valid_result"])
    assert {k: test[k] for k in refit["test_result"]} == dict(refit["test_result"])
    assert refit["best_valid_score"] == refit["best_valid_result"]["ndcg@10"]
    # with random features of h in the read: the same training, the features fitted and saved with the checkpoint
    features = run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny",
                                    config_dict={**settings, "refit_last_step": True, "refit_features": 32})
    with_features = torch.load(features["model_file"], weights_only=False)["state_dict"]
    added = {"denoiser.feature_read." + k for k in ("projection", "offset", "weight", "fitted")}
    assert set(with_features) == set(before) | added and bool(with_features["denoiser.feature_read.fitted"])
    assert {k for k in before if not torch.equal(before[k], with_features[k])} == changed
    assert features["best_valid_result"] != refit["best_valid_result"]
    valid = evaluate_checkpoint(features["model_file"], split="valid")[0]
    assert {k: valid[k] for k in features["best_valid_result"]} == dict(features["best_valid_result"])
    # read into a table of its own: the denoiser as trained, the table and its read saved with the checkpoint
    table = run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny", config_dict={
        **settings, "refit_last_step": True, "refit_features": 32, "refit_code_size": 96})
    with_table = torch.load(table["model_file"], weights_only=False)["state_dict"]
    added = {"table_read." + k for k in ("codes", "weight", "bias", "fitted")}
    added |= {"table_read.feature_read." + k for k in ("projection", "offset", "weight", "fitted")}
    assert set(with_table) == set(before) | added and bool(with_table["table_read.fitted"])
    assert with_table["table_read.codes"].shape == (before["item_embedding.weight"].shape[0], 96)
    assert {k for k in before if not torch.equal(before[k], with_table[k])} == {"null_guidance"}
    valid, test = (evaluate_checkpoint(table["model_file"], split=split)[0] for split in ("valid", "test"))
    assert {k: valid[k] for k in table["best_valid_result"]} == dict(table["best_valid_result"])
    assert {k: test[k] for k in table["test_result"]} == dict(table["test_result"])
    # the table read also taking the last item: its read saved with the checkpoint, which reloads to its results
    last = run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny", config_dict={
        **settings, "refit_last_step": True, "refit_features": 32, "refit_code_size": 96, "refit_last_item": True})
    with_last = torch.load(last["model_file"], weights_only=False)["state_dict"]
    assert set(with_last) == set(with_table) | {"table_read.last_item_weight", "table_read.last_item_mean"}
    assert with_last["table_read.last_item_weight"].shape == (before["item_embedding.weight"].shape[0], 96)
    assert bool(with_last["table_read.last_item_weight"].abs().sum() > 0)
    assert last["best_valid_result"] != table["best_valid_result"]
    valid, test = (evaluate_checkpoint(last["model_file"], split=split)[0] for split in ("valid", "test"))
    assert {k: valid[k] for k in last["best_valid_result"]} == dict(last["best_valid_result"])
    assert {k: test[k] for k in last["test_result"]} == dict(last["test_result"])


def test_flush_denormal_flushes_during_the_run_only_and_only_when_asked(tiny_config_dict, in_tmp_dir, monkeypatch):
    """``flush_denormal: True`` makes the run (its training, seen here) flush denormal floats to zero (they made ml-1m epochs grow
    several times costlier: benchmarks/denormal_cost.py) and restores the default when the run ends; False, the
    default, and a RecBole model (which has no such key) leave the process alone."""
    from recbole_dreamrec.model.dreamrec import DreamRec

    seen = []
    calculate_loss = DreamRec.calculate_loss

    def loss_seeing_the_flush(self, interaction):
        seen.append(torch.tensor([1e-40]).item())  # a denormal: 0.0 once flushed
        return calculate_loss(self, interaction)

    monkeypatch.setattr(DreamRec, "calculate_loss", loss_seeing_the_flush)
    settings = {**tiny_config_dict, "epochs": 1}
    run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny", config_dict={**settings, "flush_denormal": True},
                         saved=False)
    assert seen and set(seen) == {0.0}
    assert torch.tensor([1e-40]).item() != 0.0  # restored after the run
    seen.clear()
    run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny", config_dict=settings, saved=False)
    assert seen and 0.0 not in seen
    run_recbole_dreamrec(model="SASRec", dataset="ml-100k-tiny", config_dict=settings, saved=False)
    assert torch.tensor([1e-40]).item() != 0.0
