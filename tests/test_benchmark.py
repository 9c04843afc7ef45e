"""The side-by-side comparison tool in smoke mode: tiny data, one epoch, resumable."""

import csv
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from recbole_dreamrec.analysis.benchmark import compare
from recbole_dreamrec.errors import ConfigError
from recbole_dreamrec.analysis.evaluation import evaluate_checkpoint


def load_script(name):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_yaml(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in data.items()))
    return str(path)


@pytest.mark.slow
def test_compare_smoke_resume_redo_and_failure(tiny_config_dict, in_tmp_dir):
    shared = write_yaml(in_tmp_dir / "configs" / "tiny.yaml", {**tiny_config_dict, "epochs": 1})
    write_yaml(in_tmp_dir / "configs" / "models" / "DreamRec.yaml", {"guidance_weight": 3.0})
    out = in_tmp_dir / "results"
    logs = []

    records = compare(["DreamRec", "SASRec", "NoSuchModel"], "ml-100k-tiny", [shared], out, log=logs.append)
    assert [r["status"] for r in records] == ["ok", "ok", "failed"]
    assert "NoSuchModel" in records[2]["error"]
    for r in records[:2]:
        assert r["epochs_trained"] == 1 and r["train_seconds_per_epoch"] > 0 and r["eval_seconds"] > 0
        assert r["num_params"] > 0
        (again,) = evaluate_checkpoint(r["model_file"])
        assert {k: again[k] for k in r["test"]} == r["test"]  # the record's numbers are its checkpoint's
    assert records[0]["config"]["guidance_weight"] == 3.0  # per-model override, visible in the output
    assert yaml.safe_load((out / "configs" / "DreamRec.yaml").read_text())["guidance_weight"] == 3.0

    table = (out / "results.md").read_text()
    assert "| DreamRec | ok | 1 |" in table and "| SASRec | ok | 1 |" in table and "NoSuchModel | failed" in table
    assert (out / "results.csv").read_text().splitlines()[0].startswith("model,status,epochs")
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # resume: finished models are skipped, their records untouched; a failed one runs again; a redo runs again
    before = (out / "runs" / "DreamRec.json").stat().st_mtime_ns
    logs.clear()
    compare(["DreamRec", "SASRec", "NoSuchModel"], "ml-100k-tiny", [shared], out, log=logs.append)
    assert sum("skipped" in line for line in logs) == 2
    assert logs[2].startswith("[3/3] NoSuchModel: failed before (") and logs[2].endswith("): running again")
    assert logs[3].startswith("[3/3] NoSuchModel: running with")
    assert (out / "runs" / "DreamRec.json").stat().st_mtime_ns == before
    logs.clear()
    compare(["SASRec"], "ml-100k-tiny", [shared], out, redo=["SASRec"], log=logs.append)
    assert logs[0].startswith("[1/1] SASRec: running again; the finished record is kept as")
    assert logs[1].startswith("[1/1] SASRec: running with") and logs[-1].startswith("[1/1] SASRec: ok in")
    table = (out / "results.md").read_text()  # every finished run of the folder, in the order they finished
    assert table.index("| DreamRec | ok |") < table.index("| NoSuchModel | failed") < table.index("| SASRec | ok |")

    # the speed benchmark reads the same runs: one row for SASRec, ddpm, and each DDIM K
    load_script("speed").main(["--results", str(out), "--steps", "2,5", "--noise_seeds", "3"])
    speed = (out / "speed.md").read_text()
    for method in ("| SASRec |", "| DreamRec ddpm T=20 |", "| DreamRec ddim K=2 |", "| DreamRec ddim K=5 |"):
        assert method in speed
    assert "sampler seeds 0..2" in speed and "- ddpm: mean" in speed and "- ddim K=20: mean" in speed

    # a sampler seed equal to the config's reproduces the run's own evaluation; the seed reaches the sampler
    run = json.loads((out / "runs" / "DreamRec.json").read_text())
    own = {key: run["config"][key] for key in ("sampler", "sampling_steps", "ddim_eta")}  # the run's own sampler
    ddpm = {"sampler": "ddpm", "sampling_steps": 20, "ddim_eta": 1.0}  # fresh noise at every step
    (as_saved,) = evaluate_checkpoint(run["model_file"])
    same, ddpm_own_seed, ddpm_other_seed = evaluate_checkpoint(
        run["model_file"],
        [{**own, "sampling_seed": run["config"]["seed"]}, {**ddpm, "sampling_seed": run["config"]["seed"]},
         {**ddpm, "sampling_seed": 12345}],
    )
    assert same["ndcg@20"] == as_saved["ndcg@20"] and same["hit@20"] == as_saved["hit@20"]
    assert ddpm_other_seed["mrr@20"] != ddpm_own_seed["mrr@20"]
    assert (out / "speed.png").read_bytes()[:4] == b"\x89PNG"

    # seen-item masking: ml-100k has no repeated ratings, so masking never hides a target and can only lift a hit;
    # an unfinished run's progress file in the folder is not a run to evaluate
    (out / "runs" / "GRU4Rec.progress.json").write_text(json.dumps({"model": "GRU4Rec", "history": []}))
    load_script("masked_eval").main(["--results", str(out)])
    rows = {row[0]: row for row in csv.reader((out / "masked.csv").open())}
    assert set(rows) == {"model", "DreamRec", "SASRec"}
    hit_recbole, hit_masked = rows["model"].index("hit@20 (RecBole)"), rows["model"].index("hit@20 (seen masked)")
    for model in ("DreamRec", "SASRec"):
        assert float(rows[model][hit_masked]) >= float(rows[model][hit_recbole])

    # guidance sweep: chosen on valid, test only for the run's own setting and the chosen one
    load_script("guidance_sweep").main(["--results", str(out), "--weights", "0,4", "--samples", "1,2",
                                        "--sampling_seeds", "1"])
    sweep = list(csv.DictReader((out / "guidance.csv").open()))
    own_w = f"{run['config']['guidance_weight']:g}"
    assert own_w not in ("0", "4") and run["config"]["generation_samples"] == 1
    assert [(row["w"].split(" ")[0], row["S"]) for row in sweep] == [("0", "1"), ("4", "1"), ("0", "2"), ("4", "2"),
                                                                     (own_w, "1")]  # the run's own w added
    (own_valid,) = evaluate_checkpoint(run["model_file"], split="valid")
    own_row = next(row for row in sweep if "(own)" in row["w"])
    assert float(own_row["valid ndcg@10"]) == pytest.approx(own_valid["ndcg@10"], abs=5e-5)
    best = max(sweep, key=lambda row: (float(row["valid ndcg@10"]), row is own_row))  # a tie keeps the run's own
    assert "(chosen on valid)" in best["w"]
    assert {row["w"] for row in sweep if row["test ndcg@10"]} == {own_row["w"], best["w"]}
    (chosen_test,) = evaluate_checkpoint(run["model_file"], [{"guidance_weight": float(best["w"].split(" ")[0]),
                                                              "generation_samples": int(best["S"])}])
    assert float(best["test hit@10"]) == pytest.approx(chosen_test["hit@10"], abs=5e-5)
    assert "binomial standard error" in (out / "guidance.md").read_text()
    # the paired column: the mean per-user difference from the own setting (the difference of the two means, the
    # same users) and its standard error, zero against itself
    paired = "valid ndcg@10 − own (paired SE)"
    assert own_row[paired] == "+0.0000 (0.0000)"
    for row in sweep:
        gain, se = row[paired].replace("(", "").replace(")", "").split()
        assert float(gain) == pytest.approx(float(row["valid ndcg@10"]) - float(own_row["valid ndcg@10"]), abs=2e-4)
        assert float(se) >= 0
    assert any(float(row[paired].split()[1].strip("()")) > 0 for row in sweep)  # a per-user spread, not a constant
    assert {row["K"] for row in sweep} == {str(run["config"]["sampling_steps"])}  # no --steps: the run's own K

    # DDIM steps K as a third inference knob: each row is evaluated with its own K
    load_script("guidance_sweep").main(["--results", str(out), "--weights", "4", "--samples", "1", "--steps", "1,2",
                                        "--sampling_seeds", "1"])
    sweep = list(csv.DictReader((out / "guidance.csv").open()))
    assert [(row["w"].split(" ")[0], row["K"]) for row in sweep] == [
        ("4", "1"), ("4", "2"), (own_w, str(run["config"]["sampling_steps"]))]
    one_step, two_steps = evaluate_checkpoint(run["model_file"], [
        {"guidance_weight": 4.0, "sampler": "ddim", "sampling_steps": k} for k in (1, 2)], split="valid")
    assert one_step["ndcg@10"] != two_steps["ndcg@10"]
    assert float(sweep[0]["valid ndcg@10"]) == pytest.approx(one_step["ndcg@10"], abs=5e-5)
    assert float(sweep[1]["valid ndcg@10"]) == pytest.approx(two_steps["ndcg@10"], abs=5e-5)
    with pytest.raises(SystemExit):
        load_script("guidance_sweep").main(["--results", str(out), "--steps", "0"])


def test_an_interrupted_ablation_run_continues_to_the_same_result(tiny_config_dict, in_tmp_dir):
    """A (variant, seed) run stopped after its second validation continues from its last checkpoint when the
    ablation runs again, ends as the uninterrupted run does, and is not in the tables while unfinished."""
    from recbole_dreamrec.analysis.ablation import finished_runs, run_ablation

    settings = {k: v for k, v in tiny_config_dict.items() if k != "checkpoint_dir"}
    shared = write_yaml(in_tmp_dir / "tiny.yaml", {**settings, "epochs": 3, "stopping_step": 10})
    variants = {"w0": {"guidance_weight": 0.0}}
    quiet = {"checkpoint_dir": str(in_tmp_dir / "saved-full")}
    (full,) = run_ablation(variants, [1], "ml-100k-tiny", [shared], in_tmp_dir / "full", ["ndcg@10"],
                           config_dict=quiet, log=lambda line: None)

    def interrupt_at_second_epoch(line):
        if "epoch 2/3" in line:
            raise KeyboardInterrupt

    out, own = in_tmp_dir / "stopped", {"checkpoint_dir": str(in_tmp_dir / "saved-stopped")}
    with pytest.raises(KeyboardInterrupt):
        run_ablation(variants, [1], "ml-100k-tiny", [shared], out, ["ndcg@10"], config_dict=own,
                     log=interrupt_at_second_epoch)
    state = json.loads((out / "runs" / "w0__seed1.progress.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [0, 1] and finished_runs(out) == []
    logs = []
    (resumed,) = run_ablation(variants, [1], "ml-100k-tiny", [shared], out, ["ndcg@10"], config_dict=own,
                              log=logs.append)
    assert any("continuing from" in line and "(2 epochs validated)" in line for line in logs)
    assert resumed["test"] == full["test"] and resumed["best_valid"] == full["best_valid"]
    assert resumed["sessions"] == 2 and [h["epoch"] for h in resumed["history"]] == [0, 1, 2]
    assert not (out / "runs" / "w0__seed1.progress.json").exists()
    assert [r["variant"] for r in finished_runs(out)] == ["w0"]


def test_ablation_runs_variants_and_seeds_resumes_and_evaluates_readouts(tiny_config_dict, in_tmp_dir):
    shared = write_yaml(in_tmp_dir / "configs" / "tiny.yaml", {**tiny_config_dict, "epochs": 1})
    variants = in_tmp_dir / "variants.yaml"
    variants.write_text("base: {}\nw0: {guidance_weight: 0.0}\n")
    out = in_tmp_dir / "ablation"
    script = load_script("ablation")
    common = ["--dataset", "ml-100k-tiny", "--config_files", shared, "--variants", str(variants), "--seeds", "1,2",
              "--out", str(out), "--metrics", "hit@10,ndcg@10", "--test_rows", "60"]
    records = script.main(common)
    assert [(r["variant"], r["seed"], r["status"]) for r in records] == [
        ("base", 1, "ok"), ("base", 2, "ok"), ("w0", 1, "ok"), ("w0", 2, "ok")]
    assert records[2]["settings"] == {"guidance_weight": 0.0} and records[0]["valid_metric"] == "ndcg@10"
    assert records[0]["test"] != records[1]["test"] or records[0]["best_valid"] != records[1]["best_valid"]  # seeds
    summary = (out / "summary.md").read_text()
    mean = (records[0]["test"]["hit@10"] + records[1]["test"]["hit@10"]) / 2
    assert f"| base | 2 | {(records[0]['best_valid']['ndcg@10'] + records[1]['best_valid']['ndcg@10']) / 2:.4f} | " \
           f"{mean:.4f} |" in summary
    assert "over 60 rows" in summary
    assert len((out / "results.csv").read_text().splitlines()) == 5

    # resume: finished runs are read back, not trained again
    before = (out / "runs" / "base__seed1.json").stat().st_mtime_ns
    again = script.main(common)
    assert [r["test"] for r in again] == [r["test"] for r in records]
    assert (out / "runs" / "base__seed1.json").stat().st_mtime_ns == before

    # readouts of the same checkpoints: DDIM K=20 on the test split is what a plain evaluation gives
    script.main(["--out", str(out), "--readouts", "base", "--metrics", "hit@10,ndcg@10"])
    rows = list(csv.reader((out / "readouts-base.csv").open()))
    assert rows[0][:3] == ["readout", "seed", "valid ndcg@10"] and len(rows) == 1 + 2 * 5
    ddim20 = next(r for r in rows if r[0] == "ddim K=20" and r[1] == "1")
    direct = evaluate_checkpoint(records[0]["model_file"], [{"sampler": "ddim", "sampling_steps": 20, "ddim_eta": 0.0}])
    assert ddim20[3] == f"{direct[0]['hit@10']:.4f}"

    # guidance sweep over two seeds' checkpoints: the own setting, each with its own sampling seed, is the mean of
    # the two runs' test results; checkpoints trained otherwise are refused
    sweep_script = load_script("guidance_sweep")
    absolute = [str(Path(record["model_file"]).resolve()) for record in records[:2]]  # as a shell expands ~/...
    sweep_script.main(["--model_files", *absolute, "--out", str(out),
                       "--weights", "0,1", "--samples", "1", "--sampling_seeds", "1"])
    page = (out / "guidance.md").read_text()  # names the checkpoints as the records do, not by this machine's paths
    assert str(Path.cwd()) not in page and f"`{records[0]['model_file']}` (seed 1)" in page
    assert f"--model_files {records[0]['model_file']} {records[1]['model_file']} --out" in page
    own = next(row for row in csv.DictReader((out / "guidance.csv").open()) if "(own)" in row["w"])
    assert float(own["test hit@10"]) == pytest.approx((records[0]["test"]["hit@10"] + records[1]["test"]["hit@10"]) / 2,
                                                     abs=5e-5)
    # and each checkpoint's own numbers beside the mean: its own setting's test row is its training run's test result
    per = list(csv.DictReader((out / "guidance-per-checkpoint.csv").open()))
    assert {(r["split"], r["seed"]) for r in per} == {("valid", "1"), ("valid", "2"), ("test", "1"), ("test", "2")}
    assert len([r for r in per if r["split"] == "valid"]) == 2 * 3  # w in {0, 1} and the own w, per checkpoint
    own_w = own["w"].split(" ")[0]
    for record in records[:2]:
        row = next(r for r in per if r["split"] == "test" and r["seed"] == str(record["seed"]) and r["w"] == own_w)
        assert row["hit@10"] == f"{record['test']['hit@10']:.4f}"
    with pytest.raises(ConfigError, match=r"differ in \['guidance_weight'\]"):
        sweep_script.main(["--model_files", records[0]["model_file"], records[2]["model_file"], "--out", str(out),
                           "--debug"])


def test_compare_finishes_a_finished_run_again_when_only_a_setting_acting_after_training_changed(tiny_config_dict,
                                                                                                   in_tmp_dir):
    """A finished DreamRec run whose ``refit_features`` (a setting that acts after training) changed is not trained
    again: its best checkpoint is refit under the new value, saved beside it, validated and tested; the record holds
    that checkpoint's numbers (what reloading it gives), the record before moves to runs/replaced/, and the same
    command afterwards skips it. Turning the refit off cannot undo it: the record stays."""
    import torch

    settings = {**tiny_config_dict, "epochs": 1, "sampling_steps": 1, "refit_last_step": True}
    shared = write_yaml(in_tmp_dir / "configs" / "tiny.yaml", settings)
    out = in_tmp_dir / "results"
    (first,) = compare(["DreamRec"], "ml-100k-tiny", [shared], out, log=lambda line: None)
    saved = torch.load(first["model_file"], weights_only=False)  # its config saved before refit_last_step existed
    del saved["config"].final_config_dict["refit_last_step"]  # (a run continued across sessions keeps the first)
    torch.save(saved, first["model_file"])
    logs = []
    (again,) = compare(["DreamRec"], "ml-100k-tiny", [shared], out, config_dict={"refit_features": "16"},
                       log=logs.append)
    assert any("finishing its best checkpoint again" in line for line in logs)
    assert again["refinished"]["settings"] == {"refit_features": 16} and again["config"]["refit_features"] == 16
    assert again["model_file"] != first["model_file"] and again["epochs_trained"] == first["epochs_trained"]
    assert again["test"] != first["test"] and again["history"] == first["history"]
    before, after = (torch.load(r["model_file"], weights_only=False)["state_dict"] for r in (first, again))
    assert {k for k in before if not torch.equal(before[k], after[k])} <= {"denoiser.net.weight", "denoiser.net.bias",
                                                                           "null_guidance"}
    assert after["denoiser.feature_read.weight"].shape[0] == 16 and bool(after["denoiser.feature_read.fitted"])
    valid, test = (evaluate_checkpoint(again["model_file"], split=split)[0] for split in ("valid", "test"))
    assert {k: valid[k] for k in again["best_valid"]} == again["best_valid"]
    assert {k: test[k] for k in again["test"]} == again["test"]
    assert [json.loads(p.read_text())["test"] for p in (out / "runs" / "replaced").glob("DreamRec-*.json")] == \
        [first["test"]]
    assert yaml.safe_load((out / "configs" / "DreamRec.yaml").read_text())["refit_features"] == 16
    logs.clear()
    compare(["DreamRec"], "ml-100k-tiny", [shared], out, config_dict={"refit_features": "16"}, log=logs.append)
    assert "skipped" in logs[0]
    logs.clear()
    (kept,) = compare(["DreamRec"], "ml-100k-tiny", [shared], out, config_dict={"refit_last_step": "False"},
                      log=logs.append)
    assert kept == again and any("--redo DreamRec" in line for line in logs)


def test_compare_keeps_a_finished_record_whose_checkpoint_is_not_on_this_machine(tiny_config_dict, in_tmp_dir):
    """A committed record read on another machine (its checkpoint under someone else's home folder): a setting that
    acts after training changed, so it would be finished again, but its checkpoint is missing. The record stays as
    it was, one line says why and what to do, and the comparison goes on to the next model."""
    settings = {**tiny_config_dict, "epochs": 1, "sampling_steps": 1, "refit_last_step": True}
    shared = write_yaml(in_tmp_dir / "configs" / "tiny.yaml", settings)
    out = in_tmp_dir / "results"
    (first,) = compare(["DreamRec"], "ml-100k-tiny", [shared], out, log=lambda line: None)
    Path(first["model_file"]).unlink()
    logs = []
    kept, pop = compare(["DreamRec", "Pop"], "ml-100k-tiny", [shared], out, config_dict={"refit_features": "16"},
                        log=logs.append)
    assert kept == first and pop["model"] == "Pop" and pop["status"] == "ok"
    assert json.loads((out / "runs" / "DreamRec.json").read_text()) == first
    (line,) = [line for line in logs if "not on this machine" in line]
    assert first["model_file"] in line and "{'refit_features': 16}" in line and "--redo DreamRec" in line


def fake_training(monkeypatch, ran):
    """``run_recbole_dreamrec`` as ``run_model`` calls it, replaced by a run that records its settings and returns
    a result of the right shape at once."""
    from types import SimpleNamespace

    from recbole_dreamrec.analysis import benchmark

    def train_and_test(model, dataset, config_file_list, config_dict, progress=None):
        ran.append(dict(config_dict))
        metrics = {"ndcg@10": 0.1}
        return {"best_valid_result": metrics, "test_result": metrics, "epochs_trained": 1,
                "train_seconds_per_epoch": 1.0, "eval_seconds": 1.0, "num_params": 1, "model_file": "none.pth",
                "config": SimpleNamespace(final_config_dict={"model": model, **config_dict})}

    monkeypatch.setattr(benchmark, "run_recbole_dreamrec", train_and_test)


def test_compare_names_the_training_settings_a_finished_record_ran_under_when_they_changed(in_tmp_dir, monkeypatch):
    """A finished run whose training settings changed since (a value in a setting file, on the command line) is
    not silently shown as today's: one line names each change, before and now, and how to run it again; the record
    stays (a day-long run is not discarded for a slip). The same settings skip it without that line, and a record
    made before records kept their settings is skipped as before."""
    ran, logs = [], []
    fake_training(monkeypatch, ran)
    shared = in_tmp_dir / "configs" / "shared.yaml"
    write_yaml(shared, {"train_batch_size": 256, "epochs": 3})
    out = in_tmp_dir / "results"
    (first,) = compare(["SASRec"], "ml-100k", [str(shared)], out, log=logs.append)
    assert first["training_settings"]["train_batch_size"] == 256 and len(ran) == 1
    assert first["training_settings"]["epochs"] == 3 and "checkpoint_dir" not in first["training_settings"]
    logs.clear()
    compare(["SASRec"], "ml-100k", [str(shared)], out, log=logs.append)
    assert len(ran) == 1 and len(logs) == 1 and "finished before, skipped" in logs[0]

    write_yaml(shared, {"train_batch_size": 512, "epochs": 3})
    logs.clear()
    (kept,) = compare(["SASRec"], "ml-100k", [str(shared)], out, config_dict={"learning_rate": "0.01"},
                      log=logs.append)
    assert len(ran) == 1 and kept == first
    (line,) = [line for line in logs if "other training settings" in line]
    assert line.startswith("[1/1] SASRec: finished before under other training settings (")
    assert "learning_rate: null -> 0.01" in line or "learning_rate: 0.001 -> 0.01" in line
    assert "train_batch_size: 256 -> 512" in line and "epochs" not in line and "--redo SASRec" in line

    record = json.loads((out / "runs" / "SASRec.json").read_text())
    del record["training_settings"]  # a record made before 2026-12-04
    (out / "runs" / "SASRec.json").write_text(json.dumps(record))
    logs.clear()
    compare(["SASRec"], "ml-100k", [str(shared)], out, log=logs.append)
    assert len(ran) == 1 and not any("other training settings" in line for line in logs)

    logs.clear()
    (again,) = compare(["SASRec"], "ml-100k", [str(shared)], out, redo=["SASRec"], log=logs.append)
    assert len(ran) == 2 and again["training_settings"]["train_batch_size"] == 512


def test_an_ablation_names_the_settings_a_finished_run_ran_under_when_they_changed(in_tmp_dir, monkeypatch):
    """The same for an ablation: a variant whose settings in the variants file (or in the shared file) changed
    since its run finished keeps its record, with one line naming each change; a record made before records kept
    their training settings is compared by the variant's own settings."""
    from recbole_dreamrec.analysis import ablation

    ran, logs = [], []
    fake_training(monkeypatch, ran)
    shared = write_yaml(in_tmp_dir / "configs" / "shared.yaml", {"train_batch_size": 256})
    out = in_tmp_dir / "out"
    ablation.run_ablation({"wide": {"hidden_size": 128}}, [1], "ml-100k", [shared], out, ["ndcg@10"],
                          log=lambda *a: None)
    assert len(ran) == 1
    path = out / "runs" / "wide__seed1.json"
    assert json.loads(path.read_text())["training_settings"]["hidden_size"] == 128
    ablation.run_ablation({"wide": {"hidden_size": 128}}, [1], "ml-100k", [shared], out, ["ndcg@10"],
                          log=logs.append)
    assert len(ran) == 1 and len(logs) == 1 and "finished before, skipped" in logs[0]
    logs.clear()
    ablation.run_ablation({"wide": {"hidden_size": 256}}, [1], "ml-100k", [shared], out, ["ndcg@10"],
                          log=logs.append)
    assert len(ran) == 1 and len(logs) == 2
    assert logs[1].startswith("[1/1] wide seed 1: that run's settings differ from today's (hidden_size: 128 -> 256)")
    assert str(path) in logs[1]
    record = json.loads(path.read_text())
    del record["training_settings"]  # a record made before 2026-12-04: its variant's settings alone are compared
    path.write_text(json.dumps(record))
    logs.clear()
    write_yaml(in_tmp_dir / "configs" / "shared.yaml", {"train_batch_size": 512})
    ablation.run_ablation({"wide": {"hidden_size": 128}}, [1], "ml-100k", [shared], out, ["ndcg@10"],
                          log=logs.append)
    assert len(logs) == 1
    ablation.run_ablation({"wide": {"hidden_size": 64}}, [1], "ml-100k", [shared], out, ["ndcg@10"],
                          log=logs.append)
    assert len(ran) == 1 and "(hidden_size: 128 -> 64)" in logs[-1]


def test_compare_continues_an_interrupted_model_to_the_same_result(tiny_config_dict, in_tmp_dir):
    """Stopped after its second validation and run again with the same command, a model ends as an uninterrupted
    run does: the same validation curve, best validation and test result, every epoch counted once."""
    shared = write_yaml(in_tmp_dir / "configs" / "tiny.yaml", {**tiny_config_dict, "epochs": 3, "stopping_step": 10})
    full = compare(["DreamRec"], "ml-100k-tiny", [shared], in_tmp_dir / "full",
                   config_dict={"checkpoint_dir": str(in_tmp_dir / "saved-full")}, log=lambda line: None)[0]

    out, settings, logs = in_tmp_dir / "stopped", {"checkpoint_dir": str(in_tmp_dir / "saved-stopped")}, []

    def interrupt_at_second_epoch(line):
        logs.append(line)
        if "epoch 2/3" in line:  # after the progress file has the epoch, before its last checkpoint is written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compare(["DreamRec"], "ml-100k-tiny", [shared], out, config_dict=settings, log=interrupt_at_second_epoch)
    assert "interrupted; the same command continues it" in logs[-1]
    assert not (out / "runs" / "DreamRec.json").exists()
    state = json.loads((out / "runs" / "DreamRec.progress.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [0, 1] and Path(state["last_model_file"]).is_file()
    assert "epoch 1/3, valid ndcg@10" in logs[-3] and "elapsed" in logs[-3] and "(epoch budget)" in logs[-3]
    # the folder's table shows the unfinished run as of its last validation
    scores = [h["valid_score"] for h in state["history"]]
    best = scores.index(max(scores))
    row = (f"| DreamRec | 2 | {scores[best]:.4f} ({best + 1}) | {scores[1]:.4f} | {1 - best} | "
           f"{sum(h['train_seconds'] + h['valid_seconds'] for h in state['history']):.0f} | ")
    assert "## Unfinished runs" in (out / "results.md").read_text() and row in (out / "results.md").read_text()

    logs.clear()
    resumed = compare(["DreamRec"], "ml-100k-tiny", [shared], out, config_dict=settings, log=logs.append)[0]
    assert any(f"continuing from {state['last_model_file']} (2 epochs validated" in line for line in logs)
    assert resumed["test"] == full["test"] and resumed["best_valid"] == full["best_valid"]
    # the last checkpoint held epoch 0 only: epoch 1 was trained again and is in the curve once
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2]
    assert [h["valid_score"] for h in resumed["history"]] == [h["valid_score"] for h in full["history"]]
    assert resumed["epochs_trained"] == 3 and resumed["sessions"] == 2 and full["sessions"] == 1
    assert resumed["stopped_early"] is False and resumed["epoch_budget"] == 3
    assert resumed["wall_seconds"] > state["wall_seconds"] > 0
    assert resumed["train_seconds"] == pytest.approx(sum(h["train_seconds"] for h in resumed["history"]))
    assert not (out / "runs" / "DreamRec.progress.json").exists()
    assert (out / "anytime.png").read_bytes()[:4] == b"\x89PNG"
    assert "| DreamRec | ok | 3 | epoch budget (3) |" in (out / "results.md").read_text()
    assert "Unfinished" not in (out / "results.md").read_text()

    # a redo moves the finished record to runs/replaced/ and is then an unfinished run like any other: interrupted,
    # the same command (--redo included) continues it instead of starting a third time
    logs.clear()
    with pytest.raises(KeyboardInterrupt):
        compare(["DreamRec"], "ml-100k-tiny", [shared], out, config_dict=settings, redo=["DreamRec"],
                log=interrupt_at_second_epoch)
    assert not (out / "runs" / "DreamRec.json").exists() and "running again" in logs[0]
    (replaced,) = (out / "runs" / "replaced").glob("DreamRec-*.json")
    assert json.loads(replaced.read_text())["test"] == resumed["test"]
    assert "Unfinished runs" in (out / "results.md").read_text()
    logs.clear()
    redone = compare(["DreamRec"], "ml-100k-tiny", [shared], out, config_dict=settings, redo=["DreamRec"],
                     log=logs.append)[0]
    assert any("continuing from" in line for line in logs) and redone["sessions"] == 2
    assert redone["test"] == full["test"] and [h["epoch"] for h in redone["history"]] == [0, 1, 2]
    assert json.loads((out / "runs" / "DreamRec.json").read_text())["test"] == full["test"]


def test_compare_continues_in_a_fresh_checkout_from_checkpoints_outside_it(tiny_config_dict, tmp_path, monkeypatch):
    """compare keeps checkpoints under the home folder by default, and its progress file (which a checkout keeps)
    names them as ``~/...``: a run interrupted in one checkout continues in a fresh one that has only the progress
    file, and ends as the uninterrupted run does."""
    home, first, second = tmp_path / "home", tmp_path / "checkout-1", tmp_path / "checkout-2"
    for folder in (home, first, second):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("RECBOLE_DREAMREC_CHECKPOINTS", raising=False)
    settings = {k: v for k, v in tiny_config_dict.items() if k != "checkpoint_dir"}
    shared = write_yaml(tmp_path / "tiny.yaml", {**settings, "epochs": 3, "stopping_step": 10})
    monkeypatch.chdir(first)
    full = compare(["DreamRec"], "ml-100k-tiny", [shared], "full", config_dict={"checkpoint_dir": str(tmp_path / "s")},
                   log=lambda line: None)[0]

    def interrupt_at_second_epoch(line):
        if "epoch 2/3" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compare(["DreamRec"], "ml-100k-tiny", [shared], "results", log=interrupt_at_second_epoch)
    progress = first / "results" / "runs" / "DreamRec.progress.json"
    state = json.loads(progress.read_text())
    assert state["last_model_file"].startswith("~/.recbole_dreamrec/saved/DreamRec-")
    assert not list(first.rglob("*.pth"))  # nothing the next checkout would lose

    # a fresh checkout: the committed progress file alone, the first checkout gone
    (second / "results" / "runs").mkdir(parents=True)
    (second / "results" / "runs" / "DreamRec.progress.json").write_text(progress.read_text())
    shutil.rmtree(first)
    monkeypatch.chdir(second)
    logs = []
    resumed = compare(["DreamRec"], "ml-100k-tiny", [shared], "results", log=logs.append)[0]
    assert any(f"continuing from {state['last_model_file']} (2 epochs validated" in line for line in logs)
    assert resumed["test"] == full["test"] and resumed["sessions"] == 2
    assert [h["valid_score"] for h in resumed["history"]] == [h["valid_score"] for h in full["history"]]
    assert resumed["model_file"].startswith("~/.recbole_dreamrec/saved/")
    assert Path(os.path.expanduser(resumed["model_file"])).is_file()


@pytest.mark.slow
def test_compare_continues_a_model_stopped_within_its_first_epoch(tiny_config_dict, in_tmp_dir, monkeypatch):
    """Stopped in the middle of its first epoch (before any validation), a model continues from the checkpoint
    written within the epoch, under another checkpoint interval, and ends as the uninterrupted run does; the
    progress file counted the time spent before the stop."""
    from recbole_dreamrec.model.dreamrec import DreamRec

    shared = write_yaml(in_tmp_dir / "configs" / "tiny.yaml", {**tiny_config_dict, "epochs": 2, "stopping_step": 10})
    full = compare(["DreamRec"], "ml-100k-tiny", [shared], in_tmp_dir / "full",
                   config_dict={"checkpoint_dir": str(in_tmp_dir / "saved-full")}, log=lambda line: None)[0]

    real_loss, calls = DreamRec.calculate_loss, []

    def stop_at_batch_5(self, interaction):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_loss(self, interaction)

    out, logs = in_tmp_dir / "stopped", []
    settings = {"checkpoint_dir": str(in_tmp_dir / "saved-stopped")}
    monkeypatch.setattr(DreamRec, "calculate_loss", stop_at_batch_5)
    with pytest.raises(KeyboardInterrupt):
        compare(["DreamRec"], "ml-100k-tiny", [shared], out, config_dict={**settings, "checkpoint_minutes": 1e-9},
                log=logs.append)
    monkeypatch.setattr(DreamRec, "calculate_loss", real_loss)
    state = json.loads((out / "runs" / "DreamRec.progress.json").read_text())
    assert state["history"] == [] and state["wall_seconds"] > 0
    assert torch_load(state["last_model_file"])["partial_epoch"]["batches"] == 4

    logs.clear()
    resumed = compare(["DreamRec"], "ml-100k-tiny", [shared], out, config_dict=settings, log=logs.append)[0]
    assert any(f"continuing from {state['last_model_file']} (0 epochs validated" in line for line in logs)
    assert resumed["test"] == full["test"] and resumed["best_valid"] == full["best_valid"]
    assert [h["valid_score"] for h in resumed["history"]] == [h["valid_score"] for h in full["history"]]
    assert resumed["epochs_trained"] == 2 and resumed["sessions"] == 2
    assert resumed["wall_seconds"] > state["wall_seconds"]


def torch_load(path):
    import torch

    return torch.load(path, weights_only=False)


class _FakeTrainer:
    epochs, stopping_step, eval_step, start_epoch, last_model_file = 10, 2, 1, 0, "last.pth"
    config = {"valid_metric": "NDCG@10"}

    def __init__(self):
        self.train_epoch_seconds, self.eval_seconds, self.cur_step, self.best_valid_score = [], [], 0, 0.0
        self.train_epoch_cpu_seconds, self.eval_cpu_seconds = [], []


def test_progress_lines_estimate_the_time_left_and_resumed_runs_drop_epochs_not_in_the_checkpoint(in_tmp_dir):
    from recbole_dreamrec.analysis.benchmark import Progress, finished_run_files, start_progress
    from recbole_dreamrec.analysis.tables import unfinished_rows, unfinished_runs

    logs, trainer = [], _FakeTrainer()
    progress = start_progress(in_tmp_dir, "GRU4Rec", "ml-1m", [], {"epochs": 10}, False, logs.append)
    for epoch, (score, cur_step) in enumerate([(0.10, 0), (0.09, 1)]):
        trainer.train_epoch_seconds.append(10.0)
        trainer.eval_seconds.append(5.0)
        trainer.train_epoch_cpu_seconds.append(8.0 + epoch)
        trainer.eval_cpu_seconds.append(4.0)
        trainer.cur_step, trainer.best_valid_score = cur_step, 0.10
        progress(trainer, epoch, score)
    # 15 s an epoch; early stopping after 2 more epochs without gain (patience 2, one used), budget 8 more epochs
    assert logs[-1].startswith("GRU4Rec: epoch 2/10, valid ndcg@10 0.0900 (best 0.1000, 1 without gain), 15s/epoch")
    assert logs[-1].endswith("left 30s (no further gain) to 2m00s (epoch budget)")
    header, rows = unfinished_rows(unfinished_runs(in_tmp_dir))
    assert header[2] == "best valid ndcg@10 (epoch)"
    assert rows == [["GRU4Rec", 2, "0.1000 (1)", "0.0900", 1, "30", "8.5", rows[0][7], 1]] and float(rows[0][7]) >= 0

    # the same settings continue the run, resuming at epoch 1 drops epoch 1 from the curve
    Path("last.pth").write_bytes(b"")
    again = start_progress(in_tmp_dir, "GRU4Rec", "ml-1m", [], {"epochs": 10}, False, logs.append)
    assert again.last_model_file == "last.pth" and again.sessions == 2 and len(again.history) == 2
    resumed = _FakeTrainer()
    resumed.start_epoch, resumed.train_epoch_seconds, resumed.eval_seconds = 1, [12.0], [6.0]
    resumed.train_epoch_cpu_seconds, resumed.eval_cpu_seconds = [None], [3.0]  # resumed from an older checkpoint
    again(resumed, 1, 0.11)
    assert [(h["epoch"], h["train_seconds"], h["valid_score"]) for h in again.history] == [(0, 10.0, 0.10),
                                                                                           (1, 12.0, 0.11)]
    assert [(h["train_cpu_seconds"], h["valid_cpu_seconds"]) for h in again.history] == [(8.0, 4.0), (None, 3.0)]
    record = again.finish({"status": "ok", "wall_seconds": 1.0})
    assert record["train_cpu_seconds"] is None and record["valid_cpu_seconds"] == 7.0
    assert record["train_cpu_seconds_per_epoch"] == 8.0  # over the epochs that recorded them
    again.write()
    # other settings, or a redo, or the last checkpoint gone (a new machine) start afresh; the curve of the run not
    # continued moves to runs/replaced/ (the new run would overwrite its progress file at its first validation)
    path, replaced = in_tmp_dir / "runs" / "GRU4Rec.progress.json", in_tmp_dir / "runs" / "replaced"
    written = Progress.load(path)["written"]  # when it was written: a fresh checkout's files all have its mtime
    os.utime(path, (0, 0))
    changed = start_progress(in_tmp_dir, "GRU4Rec", "ml-1m", [], {"epochs": 20}, False, logs.append)
    assert changed.last_model_file is None and changed.history == [] and "settings changed" in logs[-1]
    kept = replaced / f"GRU4Rec-unfinished-{written}.progress.json"
    assert str(kept) in logs[-1] and "its 2 validated epochs are kept" in logs[-1] and not path.exists()
    assert Progress.load(kept)["sessions"] == 2 and [h["valid_score"] for h in Progress.load(kept)["history"]] == [
        0.10, 0.11]
    assert unfinished_runs(in_tmp_dir) == []  # nor do the tables read it as a run
    gone = "the last checkpoint of the unfinished run (last.pth) is gone"
    for redo, settings, why in [(True, {"epochs": 10}, "running again (redo)"), (False, {"epochs": 10}, gone)]:
        state = Progress.load(kept)
        state.pop("written", None)  # a file written before the time was kept in it: its modification time names it
        path.write_text(json.dumps(state))
        kept.unlink()
        os.utime(path, (60, 60))
        if not redo:
            Path("last.pth").unlink()
        fresh = start_progress(in_tmp_dir, "GRU4Rec", "ml-1m", [], settings, redo, logs.append)
        assert fresh.history == [] and fresh.last_model_file is None and fresh.sessions == 1
        assert logs[-1].startswith(f"GRU4Rec: {why}; starting afresh") and not path.exists()
        kept = next(replaced.glob("*.progress.json"))
        assert kept.name.endswith(time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(60)) + ".progress.json")
        assert len(Progress.load(kept)["history"]) == 2
    # the readers of finished runs (tables, masked_eval.py, subsets.py) pass over the progress file
    (in_tmp_dir / "runs" / "Pop.json").write_text("{}")
    assert finished_run_files(in_tmp_dir) == [in_tmp_dir / "runs" / "Pop.json"]
    assert finished_run_files(in_tmp_dir, "GRU4Rec*") == []


def test_unfinished_runs_continue_across_comment_edits_and_legacy_digests_but_not_other_values(in_tmp_dir,
                                                                                             monkeypatch):
    from recbole_dreamrec.analysis import benchmark
    from recbole_dreamrec.analysis.benchmark import Progress, legacy_settings_fingerprints, start_progress

    packaged = in_tmp_dir / "properties"  # the plugin's own defaults for the model
    (packaged / "model").mkdir(parents=True)
    (packaged / "model" / "SASRec.yaml").write_text("n_layers: 2\n")
    (packaged / "overall.yaml").write_text("topk: [10, 20]\n")
    monkeypatch.setattr(benchmark, "properties_path", lambda *parts: packaged.joinpath(*parts))
    setting, logs, trainer = in_tmp_dir / "setting.yaml", [], _FakeTrainer()
    setting.write_text("# shared setting\nepochs: 10\nMAX_ITEM_LIST_LENGTH: 50\n")
    Path("last.pth").write_bytes(b"")

    def start():
        return start_progress(in_tmp_dir, "SASRec", "ml-1m", [str(setting)], {"data_path": "d"}, False, logs.append)

    first = start()
    trainer.train_epoch_seconds, trainer.eval_seconds, trainer.last_model_file = [10.0], [5.0], "last.pth"
    first(trainer, 0, 0.1)
    # a comment and the order of keys are not settings: the run continues
    setting.write_text("# shared setting, reworded\nMAX_ITEM_LIST_LENGTH: 50\nepochs: 10  # budget\n")
    assert start().history == first.history and not any("afresh" in line for line in logs)
    # progress files written before the digest counted the packaged defaults (the files' values) or values at all
    # (the files' bytes) continue as well
    path = in_tmp_dir / "runs" / "SASRec.progress.json"
    for legacy in legacy_settings_fingerprints("SASRec", "ml-1m", [str(setting)], {"data_path": "d"}):
        state = Progress.load(path)
        state["fingerprint"] = legacy
        path.write_text(json.dumps(state))
        assert start().last_model_file == "last.pth"
    resumed = start()
    trainer.train_epoch_seconds, trainer.eval_seconds = [10.0, 10.0], [5.0, 5.0]
    resumed(trainer, 1, 0.2)  # its next validation writes today's digest
    # a changed packaged default is another setting: the run starts afresh (not one curve from two settings)
    (packaged / "model" / "SASRec.yaml").write_text("n_layers: 2  # still the same value\n")
    assert start().last_model_file == "last.pth"
    (packaged / "model" / "SASRec.yaml").write_text("n_layers: 3\n")
    assert start().history == [] and "settings changed" in logs[-1]
    first = start()
    first(trainer, 0, 0.1)
    # how often a run writes checkpoints is not a setting of what it computes (a new packaged default, a file's or
    # a --key=value's): the run continues
    told = len(logs)
    (packaged / "overall.yaml").write_text("topk: [10, 20]\ncheckpoint_minutes: 10\n")
    setting.write_text("epochs: 10\nMAX_ITEM_LIST_LENGTH: 50\ncheckpoint_minutes: 3\n")
    assert start().history == first.history
    again = start_progress(in_tmp_dir, "SASRec", "ml-1m", [str(setting)], {"data_path": "d", "checkpoint_minutes": 0},
                           False, logs.append)
    assert again.history == first.history and not any("afresh" in line for line in logs[told:])
    # another value of a setting file starts afresh
    setting.write_text("epochs: 10\nMAX_ITEM_LIST_LENGTH: 20\n")
    assert start().history == [] and "settings changed" in logs[-1]


def test_a_setting_added_later_at_the_value_that_computes_as_before_does_not_restart_unfinished_runs(in_tmp_dir,
                                                                                                    monkeypatch):
    """A new DreamRec key (``train_timesteps: 'all'``, ``flush_denormal: False``) whose default computes what runs
    did without it leaves the digest as it was before the key existed; another value of it is another run. A key
    that acts after training (``refit_last_step``) never counts."""
    from recbole_dreamrec.analysis import benchmark
    from recbole_dreamrec.analysis.benchmark import settings_fingerprint

    packaged = in_tmp_dir / "properties"
    (packaged / "model").mkdir(parents=True)
    monkeypatch.setattr(benchmark, "properties_path", lambda *parts: packaged.joinpath(*parts))
    setting = write_yaml(in_tmp_dir / "setting.yaml", {"epochs": 10})

    def digest(model_yaml, **given):
        (packaged / "model" / "DreamRec.yaml").write_text(model_yaml)
        return settings_fingerprint("DreamRec", "ml-1m", [str(setting)], given)

    before = digest("hidden_size: 64\n")
    assert digest("hidden_size: 64\ntrain_timesteps: 'all'\nflush_denormal: False\n") == before
    assert digest("hidden_size: 64\ntrain_timesteps: 'all'\n", train_timesteps="sampler") != before
    assert digest("hidden_size: 64\nflush_denormal: False\n", flush_denormal="True") != before
    assert digest("hidden_size: 64\ntrain_timesteps: 'sampler'\n") != before
    # a setting that acts after training leaves the validation curve alone: the run continues under either value
    assert digest("hidden_size: 64\nrefit_last_step: True\n") == digest("hidden_size: 64\n", refit_last_step="False") \
        == digest("hidden_size: 64\nrefit_features: 0\n", refit_features="2048") == before


def test_unfinished_runs_show_the_best_epoch_and_the_count_as_recbole_early_stopping_keeps_them(in_tmp_dir):
    """RecBole counts a validation score equal to the best as a gain: it keeps that later checkpoint and counts the
    validations without gain from there (the ml-1m DreamRec run tied 0.0827 at epochs 32 and 34)."""
    from recbole_dreamrec.analysis.tables import unfinished_rows

    scores = [0.10, 0.12, 0.11, 0.12, 0.115]
    history = [{"epoch": i, "train_seconds": 1.0, "valid_seconds": 0.5, "valid_score": s} for i, s in enumerate(scores)]
    _, (row,) = unfinished_rows([{"model": "DreamRec", "history": history, "sessions": 1}])
    assert row[2:5] == ["0.1200 (4)", "0.1150", 1]


def test_the_tables_list_a_folders_runs_in_one_order_whichever_command_writes_them(in_tmp_dir):
    """Two commands sharing a folder each rebuild its tables; the rows follow the finish times (then the names), not
    the writer's own models first, so the committed tables do not change order with the last writer."""
    from recbole_dreamrec.analysis.benchmark import with_other_runs

    finished = {"GRU4Rec": "2026-11-29 10:21:53", "Pop": "2026-11-28 21:14:41", "DreamRec": "2026-11-29 04:30:35",
                "NARM": "2026-11-29 04:30:35"}
    records = {m: {"model": m, "status": "ok", "finished": t} for m, t in finished.items()}
    (in_tmp_dir / "runs").mkdir()
    for model in ("GRU4Rec", "DreamRec", "NARM", "Pop"):
        (in_tmp_dir / "runs" / f"{model}.json").write_text(json.dumps(records[model]))
    (in_tmp_dir / "runs" / "SASRec.progress.json").write_text(json.dumps({"model": "SASRec", "history": []}))
    expected = ["Pop", "DreamRec", "NARM", "GRU4Rec"]  # DreamRec and NARM finished in the same second: by name
    for writer in ([], [records["Pop"]], [records["GRU4Rec"], records["Pop"]], [records["NARM"]]):
        assert [r["model"] for r in with_other_runs(writer, in_tmp_dir)] == expected


def test_the_anytime_plot_counts_cpu_seconds_where_every_run_recorded_some():
    """CPU seconds do not depend on what else the machine ran; epochs of a run begun before they were recorded
    count at the run's mean (training per epoch, validation per validation), an entry of two epochs (eval_step 2)
    twice; a run with none keeps the whole plot on the wall clock."""
    from recbole_dreamrec.analysis.tables import _has_cpu_seconds, anytime_curve, cpu_seconds_per_epoch

    def entry(epoch, wall, train_cpu, valid_cpu):
        return {"epoch": epoch, "train_seconds": wall, "valid_seconds": 1.0, "train_cpu_seconds": train_cpu,
                "valid_cpu_seconds": valid_cpu, "valid_score": 0.1 * epoch}

    history = [entry(1, 50.0, None, None), entry(2, 90.0, 10.0, 2.0), entry(4, 80.0, 26.0, 4.0)]
    assert cpu_seconds_per_epoch(history) == 12.0  # (10 + 26) CPU seconds over 3 epochs
    assert anytime_curve(history, "cpu") == ([2 * 12.0 + 3.0, 27.0 + 12.0, 39.0 + 30.0], [0.1, 0.2, 0.4])
    assert anytime_curve(history) == ([51.0, 142.0, 223.0], [0.1, 0.2, 0.4])
    legacy = [{k: v for k, v in h.items() if "cpu" not in k} for h in history]
    assert _has_cpu_seconds(history) and not _has_cpu_seconds(legacy) and cpu_seconds_per_epoch(legacy) is None
    # a legacy run whose cost was measured afterwards (benchmarks/cpu_cost.py); the recorded entries win over it
    cost = {"train_cpu_seconds_per_epoch": 5.0, "valid_cpu_seconds": 1.0}
    assert _has_cpu_seconds(legacy, cost) and not _has_cpu_seconds(legacy, {**cost, "valid_cpu_seconds": None})
    assert anytime_curve(legacy, "cpu", cost)[0] == [2 * 5.0 + 1.0, 11.0 + 5.0 + 1.0, 17.0 + 2 * 5.0 + 1.0]
    assert anytime_curve(history, "cpu", cost) == anytime_curve(history, "cpu")


@pytest.mark.slow
def test_cpu_cost_measures_a_run_recorded_without_cpu_seconds_and_moves_the_plot_to_the_cpu_clock(
        tiny_config_dict, in_tmp_dir, monkeypatch):
    import recbole_dreamrec.analysis.benchmark as benchmark
    import recbole_dreamrec.analysis.tables as tables

    shared = write_yaml(in_tmp_dir / "configs" / "tiny.yaml", {**tiny_config_dict, "epochs": 2, "stopping_step": 10})
    out, metrics = in_tmp_dir / "results", ["ndcg@10", "hit@10"]
    (record,) = compare(["DreamRec"], "ml-100k-tiny", [shared], out, log=lambda line: None, metrics=metrics)
    assert all(h["train_cpu_seconds"] > 0 and h["valid_cpu_seconds"] > 0 for h in record["history"])
    assert record["train_cpu_seconds_per_epoch"] == pytest.approx(
        sum(h["train_cpu_seconds"] for h in record["history"]) / 2)

    # the same run as recorded before CPU seconds were: the plot stays on the wall clock until its cost is measured
    legacy = {k: v for k, v in record.items() if "cpu" not in k}
    legacy["history"] = [{k: v for k, v in h.items() if "cpu" not in k} for h in record["history"]]
    legacy["config"] = {**legacy["config"], "sampling_steps": 3}  # as if it ran when the default K was 3
    (out / "runs" / "DreamRec.json").write_text(json.dumps(legacy))
    clocks, real_curve, real_run, measured_with = [], tables.anytime_curve, benchmark.run_recbole_dreamrec, []

    def recording_curve(history, clock="wall", cost=None):
        clocks.append(clock)
        return real_curve(history, clock, cost)

    def recording_run(model, dataset, config_file_list, config_dict, **kwargs):
        measured_with.append(config_dict)
        return real_run(model, dataset, config_file_list, config_dict, **kwargs)

    monkeypatch.setattr(tables, "anytime_curve", recording_curve)
    monkeypatch.setattr(benchmark, "run_recbole_dreamrec", recording_run)
    tables.write_tables(benchmark.with_other_runs([], out), out, "ml-100k-tiny", metrics)
    assert clocks == ["wall"]
    clocks.clear()
    load_script("cpu_cost").main(["--results", str(out), "--models", "DreamRec"])
    measured = json.loads((out / "runs" / "DreamRec.json").read_text())
    assert {k: v for k, v in measured.items() if k != "cpu_cost"} == legacy  # nothing else changes
    cost = measured["cpu_cost"]
    assert cost["epochs"] == 1 and cost["valid_cpu_seconds"] > 0
    # the same model on the same data: about the recorded cost of an epoch (not milliseconds, not the wall clock)
    assert 0.2 < cost["train_cpu_seconds_per_epoch"] / record["train_cpu_seconds_per_epoch"] < 5
    assert clocks == ["cpu"]
    (settings,) = measured_with  # the run's own model settings, not today's defaults; one epoch, validated
    assert settings["sampling_steps"] == 3 and settings["guidance_weight"] == legacy["config"]["guidance_weight"]
    assert settings["epochs"] == 1 and settings["eval_step"] == 1 and "train_neg_sample_args" not in settings
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert [h for h in header if h.startswith("test ")] == ["test ndcg@10", "test hit@10"]  # the folder's columns
    with pytest.raises(SystemExit) as stopped:
        load_script("cpu_cost").main(["--results", str(out), "--models", "SASRec"])
    assert stopped.value.code == 2


def test_records_name_the_cpu_and_its_kernels_since_seeded_runs_differ_between_cpus(in_tmp_dir):
    import torch

    from recbole_dreamrec.reporting import cpu_model, machine_info

    cpuinfo = in_tmp_dir / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 9R14\n")
    assert cpu_model(cpuinfo) == "AMD EPYC 9R14"
    assert cpu_model(in_tmp_dir / "absent") == (__import__("platform").processor() or None)
    info = machine_info()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and info["cpu"] == cpu_model()
    assert info["device"].startswith("CPU (") or torch.cuda.is_available()


def test_published_results_are_rows_of_their_own_beside_measured_ones(in_tmp_dir):
    """A folder's ``published.yaml`` (numbers reported elsewhere for the same data setting) adds one row per model,
    labelled published, after the measured rows; a measured row of the same model stays as it is."""
    from recbole_dreamrec.analysis.tables import write_tables

    out = in_tmp_dir / "results"
    out.mkdir()
    (out / "published.yaml").write_text("source: RecBole's tuned runs.\nmodels:\n"
                                        "  NARM: {ndcg@10: 0.1471, hit@10: 0.2662}\n  SRGNN: {ndcg@10: 0.1360}\n")
    measured = {"model": "NARM", "status": "ok", "epochs_trained": 3, "stopped_early": True, "epoch_budget": 9,
                "train_seconds_per_epoch": 1.0, "eval_seconds": 0.5, "num_params": 7, "best_valid": {"ndcg@10": 0.2},
                "test": {"ndcg@10": 0.1234, "hit@10": 0.25}, "machine": {"device": "CPU (2 cores)"}}
    write_tables([measured], out, "toy", ["ndcg@10", "hit@10"])
    with open(out / "results.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert [row[:2] for row in rows] == [["NARM", "ok"], ["NARM (published)", "published"],
                                         ["SRGNN (published)", "published"]]
    assert rows[0][-2:] == ["0.1234", "0.2500"] and rows[1][-2:] == ["0.1471", "0.2662"] and rows[2][-2:] == ["0.1360", ""]
    assert "Rows marked published were not measured here: RecBole's tuned runs." in (out / "results.md").read_text()


def test_unfinished_runs_continue_when_a_packaged_default_changes_to_what_the_run_sets_itself(in_tmp_dir, monkeypatch):
    """The digest is of the values a run computes from, not of where each comes from: a data set default that an
    ablation variant (a --key=value) already sets can change under the unfinished variant, which continues; a default
    the run does take still starts it afresh, and a digest of the sources (before 2026-12-02) is still accepted."""
    from recbole_dreamrec.analysis import benchmark
    from recbole_dreamrec.analysis.benchmark import (Progress, effective_settings, legacy_settings_fingerprints,
                                                     start_progress)

    packaged = in_tmp_dir / "properties"
    (packaged / "model").mkdir(parents=True)
    (packaged / "dataset" / "ml-1m").mkdir(parents=True)
    (packaged / "model" / "DreamRec.yaml").write_text("hidden_size: 64\nlearning_rate: 0.001\n"
                                                      "eval_args: {split: {RS: [0.8, 0.1, 0.1]}, order: RO}\n")
    (packaged / "dataset" / "ml-1m" / "DreamRec.yaml").write_text("hidden_size: 256\n")
    monkeypatch.setattr(benchmark, "properties_path", lambda *parts: packaged.joinpath(*parts))
    setting, logs, trainer = in_tmp_dir / "setting.yaml", [], _FakeTrainer()
    setting.write_text("eval_args: {split: {LS: valid_and_test}}\n")
    Path("last.pth").write_bytes(b"")
    variant = {"hidden_size": 512, "train_batch_size": 2048}

    def start():
        return start_progress(in_tmp_dir, "DreamRec", "ml-1m", [str(setting)], variant, False, logs.append)

    # later sources win; a nested dict is merged key by key, as RecBole merges eval_args
    assert effective_settings("DreamRec", "ml-1m", [str(setting)], variant) == {
        "hidden_size": 512, "learning_rate": 0.001, "train_batch_size": 2048,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1], "LS": "valid_and_test"}, "order": "RO"}}
    first = start()
    trainer.train_epoch_seconds, trainer.eval_seconds = [10.0], [5.0]
    first(trainer, 0, 0.1)
    # the data set default moves to what the variant sets anyway, and a new default repeats the variant's value
    (packaged / "dataset" / "ml-1m" / "DreamRec.yaml").write_text("hidden_size: 512\ntrain_batch_size: 2048\n")
    assert start().history == first.history and not any("afresh" in line for line in logs)
    # a default the run takes from the packaged files changes: another setting
    (packaged / "model" / "DreamRec.yaml").write_text("hidden_size: 64\nlearning_rate: 0.002\n"
                                                      "eval_args: {split: {RS: [0.8, 0.1, 0.1]}, order: RO}\n")
    assert start().history == [] and "settings changed" in logs[-1]
    # so does a nested value no later source replaces
    first = start()
    first(trainer, 0, 0.1)
    (packaged / "model" / "DreamRec.yaml").write_text("hidden_size: 64\nlearning_rate: 0.002\n"
                                                      "eval_args: {split: {RS: [0.8, 0.1, 0.1]}, order: TO}\n")
    assert start().history == [] and "settings changed" in logs[-1]
    # a progress file holding the earlier digest of the sources continues under the same sources
    first = start()
    first(trainer, 0, 0.1)
    path = in_tmp_dir / "runs" / "DreamRec.progress.json"
    state = Progress.load(path)
    state["fingerprint"] = legacy_settings_fingerprints("DreamRec", "ml-1m", [str(setting)], variant)[1]
    path.write_text(json.dumps(state))
    assert start().history == first.history


def test_a_run_given_its_settings_on_the_command_line_continues_under_the_values_they_stand_for(in_tmp_dir,
                                                                                                 monkeypatch):
    """``--seed=2021`` reaches compare.py as the string '2021' and RecBole computes with the int 2021: the digest is of
    the value, so the same run given as a string, an int or from a file is one run; a progress file that held the
    digest of the raw strings (before 2026-12-03) continues too."""
    from recbole_dreamrec.analysis import benchmark
    from recbole_dreamrec.analysis.benchmark import (Progress, effective_settings, legacy_settings_fingerprints,
                                                     settings_fingerprint, start_progress)

    packaged = in_tmp_dir / "properties"
    (packaged / "model").mkdir(parents=True)
    (packaged / "model" / "SASRec.yaml").write_text("n_layers: 2\n")
    monkeypatch.setattr(benchmark, "properties_path", lambda *parts: packaged.joinpath(*parts))
    setting = write_yaml(in_tmp_dir / "setting.yaml", {"epochs": 10})
    typed = {"seed": 2021, "learning_rate": 0.002, "reproducibility": True, "data_path": "d", "topk": [10, 20]}
    given = {"seed": "2021", "learning_rate": "0.002", "reproducibility": "true", "data_path": "d",
             "topk": "[10, 20]"}
    assert effective_settings("SASRec", "ml-1m", [str(setting)], given) == {"n_layers": 2, "epochs": 10, **typed}
    digest = settings_fingerprint("SASRec", "ml-1m", [str(setting)], typed)
    assert settings_fingerprint("SASRec", "ml-1m", [str(setting)], given) == digest
    assert settings_fingerprint("SASRec", "ml-1m", [str(setting)], {**given, "seed": "2022"}) != digest

    logs, trainer = [], _FakeTrainer()
    Path("last.pth").write_bytes(b"")
    first = start_progress(in_tmp_dir, "SASRec", "ml-1m", [str(setting)], given, False, logs.append)
    trainer.train_epoch_seconds, trainer.eval_seconds, trainer.last_model_file = [10.0], [5.0], "last.pth"
    first(trainer, 0, 0.1)
    assert start_progress(in_tmp_dir, "SASRec", "ml-1m", [str(setting)], typed, False, logs.append).history == \
        first.history
    # the digest of the strings as given, which progress files held before: still the same run
    path = in_tmp_dir / "runs" / "SASRec.progress.json"
    state = Progress.load(path)
    raw = benchmark._values_digest(["SASRec", "ml-1m", {"n_layers": 2, "epochs": 10, **given}])
    assert raw != digest and raw in legacy_settings_fingerprints("SASRec", "ml-1m", [str(setting)], given)
    state["fingerprint"] = raw
    path.write_text(json.dumps(state))
    assert start_progress(in_tmp_dir, "SASRec", "ml-1m", [str(setting)], given, False, logs.append).history == \
        first.history
    assert not any("afresh" in line or "settings changed" in line for line in logs)


def test_a_models_overrides_for_one_setting_apply_after_those_for_every_setting(in_tmp_dir):
    from recbole_dreamrec.analysis.benchmark import model_override_files

    shared = write_yaml(in_tmp_dir / "configs" / "ml-1m.yaml", {"train_batch_size": 256})
    general = write_yaml(in_tmp_dir / "configs" / "models" / "DreamRec.yaml", {"train_batch_size": 512})
    specific = write_yaml(in_tmp_dir / "configs" / "models" / "ml-1m" / "DreamRec.yaml", {"train_batch_size": 2048})
    write_yaml(in_tmp_dir / "configs" / "models" / "ml-100k" / "DreamRec.yaml", {"train_batch_size": 4096})
    write_yaml(in_tmp_dir / "configs" / "models" / "ml-1m" / "SASRec.yaml", {"train_batch_size": 128})

    assert model_override_files([shared], "DreamRec") == [general, specific]
    assert model_override_files([shared], "GRU4Rec") == []
    assert model_override_files([], "DreamRec") == []
    other = write_yaml(in_tmp_dir / "configs" / "ml-100k.yaml", {})
    assert model_override_files([other, shared], "DreamRec") == [general, str(Path(other).parent / "models" /
                                                                             "ml-100k" / "DreamRec.yaml")]


def test_refit_checkpoint_finishes_a_run_trained_without_the_refit(tiny_config_dict, in_tmp_dir, capsys):
    """The script's checkpoint is the run's own with the last step refit (encoder untouched, the null vector the
    mean h) and ``refit_last_step`` in its config, and it evaluates to the "after" validation it prints; a checkpoint
    read at K = 5 is refused in one line."""
    import torch

    from recbole_dreamrec import run_recbole_dreamrec
    from recbole_dreamrec.analysis.evaluation import evaluate_checkpoint

    settings = {**tiny_config_dict, "epochs": 1, "sampling_steps": 1}
    run = run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny", config_dict=settings)
    out = in_tmp_dir / "refit.pth"
    load_script("refit_checkpoint").main([run["model_file"], "--out", str(out)])
    printed = capsys.readouterr().out
    before = torch.load(run["model_file"], weights_only=False)
    after = torch.load(out, weights_only=False)
    assert after["config"]["refit_last_step"] is True and not before["config"]["refit_last_step"]
    assert {k for k in before["state_dict"] if not torch.equal(before["state_dict"][k], after["state_dict"][k])} == \
        {"denoiser.net.weight", "denoiser.net.bias", "null_guidance"}
    valid = evaluate_checkpoint(str(out), split="valid")[0]
    assert f"valid after: recall@10 {valid['recall@10']:.4f}" in printed
    # with random features of h: saved with the checkpoint (its config says how many), which reloads to that read
    wide = in_tmp_dir / "refit-features.pth"
    load_script("refit_checkpoint").main([run["model_file"], "--out", str(wide), "--refit_features", "16"])
    printed = capsys.readouterr().out
    saved = torch.load(wide, weights_only=False)
    assert saved["config"]["refit_features"] == 16 and saved["state_dict"]["denoiser.feature_read.weight"].shape[0] == 16
    valid_wide = evaluate_checkpoint(str(wide), split="valid")[0]
    assert f"valid after: recall@10 {valid_wide['recall@10']:.4f}" in printed and valid_wide != valid
    # into a table of its own: saved with the checkpoint, the denoiser as trained
    table = in_tmp_dir / "refit-table.pth"
    load_script("refit_checkpoint").main([run["model_file"], "--out", str(table), "--refit_code_size", "24"])
    printed = capsys.readouterr().out
    saved = torch.load(table, weights_only=False)
    assert saved["config"]["refit_code_size"] == 24 and saved["state_dict"]["table_read.codes"].shape[1] == 24
    assert torch.equal(saved["state_dict"]["denoiser.net.weight"], before["state_dict"]["denoiser.net.weight"])
    valid_table = evaluate_checkpoint(str(table), split="valid")[0]
    assert f"valid after: recall@10 {valid_table['recall@10']:.4f}" in printed and valid_table != valid
    # the table read also taking the last item
    last = in_tmp_dir / "refit-last.pth"
    load_script("refit_checkpoint").main([run["model_file"], "--out", str(last), "--refit_code_size", "24",
                                          "--refit_last_item"])
    printed = capsys.readouterr().out
    saved = torch.load(last, weights_only=False)
    assert saved["config"]["refit_last_item"] is True
    n_items = before["state_dict"]["item_embedding.weight"].shape[0]
    assert saved["state_dict"]["table_read.last_item_weight"].shape == (n_items, 24)
    valid_last = evaluate_checkpoint(str(last), split="valid")[0]
    assert f"valid after: recall@10 {valid_last['recall@10']:.4f}" in printed
    # its rows shrunk by a ridge of their own: saved in the config, a smaller T
    T = {}
    for ridge in ("1", "1000"):
        path = in_tmp_dir / f"refit-last-{ridge}.pth"
        load_script("refit_checkpoint").main([run["model_file"], "--out", str(path), "--refit_code_size", "24",
                                              "--refit_last_item", "--refit_last_item_ridge", ridge])
        saved = torch.load(path, weights_only=False)
        assert saved["config"]["refit_last_item_ridge"] == float(ridge)
        T[ridge] = saved["state_dict"]["table_read.last_item_weight"]
    capsys.readouterr()
    assert T["1000"].norm() < 0.5 * T["1"].norm()
    # those rows reading the last two items alike: saved in the config, and the reloaded model reads them so
    path = in_tmp_dir / "refit-lags.pth"
    load_script("refit_checkpoint").main([run["model_file"], "--out", str(path), "--refit_code_size", "24",
                                          "--refit_last_item", "--refit_last_item_lags", "2",
                                          "--refit_last_item_decay", "1"])
    printed = capsys.readouterr().out
    saved = torch.load(path, weights_only=False)
    assert (saved["config"]["refit_last_item_lags"], saved["config"]["refit_last_item_decay"]) == (2, 1.0)
    valid_lags = evaluate_checkpoint(str(path), split="valid")[0]
    assert f"valid after: recall@10 {valid_lags['recall@10']:.4f}" in printed
    five = run_recbole_dreamrec(model="DreamRec", dataset="ml-100k-tiny", config_dict={**settings, "sampling_steps": 5})
    with pytest.raises(SystemExit):
        load_script("refit_checkpoint").main([five["model_file"], "--out", str(in_tmp_dir / "five.pth")])
    assert "refit_last_step refits the one-step oracle" in capsys.readouterr().err


def test_an_ablation_runs_its_model_under_the_same_per_model_overrides_as_compare(in_tmp_dir, monkeypatch):
    """An ablation of DreamRec under configs/ml-1m.yaml varies the setting compare.py's DreamRec row ran in (its own
    batch from configs/models/ml-1m/DreamRec.yaml), not the baselines' shared batch at DreamRec's learning rate; a
    variant's own value still wins over the override."""
    from recbole_dreamrec.analysis import ablation, benchmark

    shared = write_yaml(in_tmp_dir / "configs" / "ml-1m.yaml", {"train_batch_size": 256})
    override = write_yaml(in_tmp_dir / "configs" / "models" / "ml-1m" / "DreamRec.yaml", {"train_batch_size": 2048})
    ran = []

    def train_and_test(model, dataset, config_file_list, config_dict, progress=None):  # what run_model calls
        ran.append((model, list(config_file_list), dict(config_dict)))
        raise RuntimeError("not trained in this test")

    monkeypatch.setattr(benchmark, "run_recbole_dreamrec", train_and_test)
    variants = {"wide": {"inner_size": 1024}, "small-batch": {"train_batch_size": 256}}
    ablation.run_ablation(variants, [1], "ml-1m", [shared], in_tmp_dir / "out", ["ndcg@10"], log=lambda *a: None)
    assert [(model, files) for model, files, _ in ran] == [("DreamRec", [shared, override])] * 2
    progress = {path.name: json.loads(path.read_text()) for path in (in_tmp_dir / "out" / "runs").glob("*.json")}
    assert {name: record["status"] for name, record in progress.items()} == {
        "wide__seed1.json": "failed", "small-batch__seed1.json": "failed"}
    # the digest of a variant counts the override: the same run as the variant that names the batch itself
    from recbole_dreamrec.analysis.benchmark import effective_settings
    assert effective_settings("DreamRec", "ml-1m", ran[0][1], ran[0][2])["train_batch_size"] == 2048
    assert effective_settings("DreamRec", "ml-1m", ran[1][1], ran[1][2])["train_batch_size"] == 256
    # the same ablation again: a failed run (its cause fixed, say a data path) runs again, a finished one does not
    ran.clear()
    (in_tmp_dir / "out" / "runs" / "wide__seed1.json").write_text(json.dumps(
        {**progress["wide__seed1.json"], "status": "ok", "best_valid": {"ndcg@10": 0.1}, "test": {"ndcg@10": 0.1},
         "epochs_trained": 1, "train_seconds_per_epoch": 1.0}))
    logs = []
    ablation.run_ablation(variants, [1], "ml-1m", [shared], in_tmp_dir / "out", ["ndcg@10"], log=logs.append)
    assert [settings["train_batch_size"] for _, _, settings in ran] == [256]  # small-batch alone
    assert logs[0].startswith("[1/2] wide seed 1: finished before, skipped")
    assert logs[1] == "[2/2] small-batch seed 1: failed before (RuntimeError: not trained in this test): running again"
    # a model named for every variant (--model=SASRec) is the one run, under its own overrides (none here)
    ran.clear()
    ablation.run_ablation({"wide": {"hidden_size": 128}}, [2], "ml-1m", [shared], in_tmp_dir / "out", ["ndcg@10"],
                          config_dict={"model": "SASRec"}, log=lambda *a: None)
    assert [(model, files, "model" in settings) for model, files, settings in ran] == [("SASRec", [shared], False)]


def test_the_ml1m_benchmark_runs_dreamrec_in_its_shipped_ml1m_setting_and_the_baselines_at_the_shared_batch():
    """benchmarks/configs/ml-1m.yaml sets one batch for every model; DreamRec's row must still be what
    ``--dataset ml-1m`` users get from properties/dataset/ml-1m/DreamRec.yaml."""
    from recbole_dreamrec import Config
    from recbole_dreamrec.analysis.benchmark import effective_settings, model_override_files

    root = Path(__file__).resolve().parents[1]
    shared = [str(root / "benchmarks" / "configs" / "ml-1m.yaml")]
    shipped = Config("DreamRec", "ml-1m")  # what `--dataset ml-1m` gives without setting files
    ran = effective_settings("DreamRec", "ml-1m", shared + model_override_files(shared, "DreamRec"), {})
    for key in ("hidden_size", "train_batch_size", "learning_rate", "diffusion_loss_type", "guidance_weight",
                "sampling_steps"):
        assert ran[key] == shipped[key], key
    baseline = effective_settings("GRU4Rec", "ml-1m", shared + model_override_files(shared, "GRU4Rec"), {})
    assert baseline["train_batch_size"] == 256
