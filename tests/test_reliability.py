"""Bad input gives one clear error before training; NaN guard; same seed, same numbers; the download path."""

import re
import urllib.error
import zipfile
from pathlib import Path

import pytest
import torch

import recbole.data.dataset.dataset as recbole_dataset
from recbole_dreamrec import Config, run_recbole_dreamrec
from recbole_dreamrec.model.dreamrec import DreamRec


def tiny_run(tiny_config_dict, **overrides):
    return run_recbole_dreamrec("DreamRec", "ml-100k-tiny", config_dict={**tiny_config_dict, **overrides})


def write_inter(folder, name, header, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))


def test_invalid_dreamrec_setting_fails_in_config_before_any_data(tmp_path):
    with pytest.raises(ValueError, match=r"sampler must be one of \['ddpm', 'ddim'\], got 'euler'"):
        Config(model="DreamRec", dataset="nowhere", config_dict={"sampler": "euler", "data_path": str(tmp_path)})


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'SasRec'.*SASRec"):
        run_recbole_dreamrec("SasRec", "ml-100k")


def test_unknown_dataset_says_where_it_looked(tmp_path, in_tmp_dir):
    with pytest.raises(FileNotFoundError, match=r"dataset 'my-data' not found: RecBole looked in .*--data_path=DIR"):
        run_recbole_dreamrec("DreamRec", "my-data", config_dict={"data_path": str(tmp_path)})


def test_folder_without_the_inter_file(tmp_path, in_tmp_dir):
    (tmp_path / "my-data").mkdir()
    with pytest.raises(FileNotFoundError, match=r"exists but lacks \['my-data.inter'\]"):
        run_recbole_dreamrec("DreamRec", "my-data", config_dict={"data_path": str(tmp_path)})


def test_missing_timestamp_column(tmp_path, in_tmp_dir):
    write_inter(tmp_path / "toy", "toy", ["user_id:token", "item_id:token"], [(u, i) for u in range(5) for i in range(6)])
    with pytest.raises(ValueError, match=r"no column 'timestamp' \(needed for eval_args.order: TO\)"):
        run_recbole_dreamrec("DreamRec", "toy", config_dict={"data_path": str(tmp_path)})


def test_mistyped_id_column(tmp_path, in_tmp_dir):
    header = ["user_id:token", "item_id:float", "timestamp:float"]
    write_inter(tmp_path / "toy", "toy", header, [(u, i, u * 10 + i) for u in range(5) for i in range(6)])
    with pytest.raises(ValueError, match=r"toy.inter: column 'item_id' is typed float; ids must be declared 'item_id:token'"):
        run_recbole_dreamrec("DreamRec", "toy", config_dict={
            "data_path": str(tmp_path), "load_col": {"inter": ["user_id", "item_id", "timestamp"]}})


def test_empty_after_filtering(tiny_config_dict, in_tmp_dir):
    with pytest.raises(ValueError, match="no interactions left after filtering"):
        tiny_run(tiny_config_dict, user_inter_num_interval="[100000,inf)")


def test_non_finite_loss_names_epoch_and_batch_and_keeps_best_checkpoint(tiny_config_dict, in_tmp_dir, monkeypatch):
    real_loss = DreamRec.calculate_loss
    state = {"calls": 0, "nan_from": None}

    def loss_turning_nan(self, interaction):
        state["calls"] += 1
        loss = real_loss(self, interaction)
        if state["nan_from"] is not None and state["calls"] >= state["nan_from"]:
            return loss * float("nan")
        return loss

    monkeypatch.setattr(DreamRec, "calculate_loss", loss_turning_nan)
    tiny_run(tiny_config_dict, epochs=1)
    batches_per_epoch = state["calls"]
    state.update(calls=0, nan_from=batches_per_epoch + 2)  # epoch 1, batch 2
    with pytest.raises(FloatingPointError, match=r"at epoch 1, batch 2; best checkpoint kept: ") as error:
        tiny_run(tiny_config_dict, epochs=3)
    kept = re.search(r"best checkpoint kept: (\S+\.pth)", str(error.value)).group(1)
    assert torch.load(kept, weights_only=False)["epoch"] == 0  # written after epoch 0's validation, not after
    assert not list(Path(kept).parent.glob("*.partial"))


def test_same_seed_same_metrics(tiny_config_dict, in_tmp_dir):
    a = tiny_run(tiny_config_dict, epochs=1)
    b = tiny_run(tiny_config_dict, epochs=1)
    assert a["test_result"] == b["test_result"] and a["best_valid_result"] == b["best_valid_result"]


def test_download_runs_in_a_single_process_and_offline_failure_is_clear(tiny_data_path, tmp_path, in_tmp_dir,
                                                                          monkeypatch):
    monkeypatch.setattr(recbole_dataset, "decide_download", lambda url: True)

    def offline(url, folder):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(recbole_dataset, "download_url", offline)
    with pytest.raises(ConnectionError, match=r"downloading it failed .*--data_path=DIR where DIR/ml-1m/ml-1m.inter"):
        run_recbole_dreamrec("DreamRec", "ml-1m", config_dict={"data_path": str(tmp_path / "empty"), "epochs": 1})

    def fake_download(url, folder):  # "downloads" the tiny slice as ml-1m
        path = f"{folder}/ml-1m.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.write(f"{tiny_data_path}/ml-100k-tiny/ml-100k-tiny.inter", "ml-1m.inter")
        return path

    monkeypatch.setattr(recbole_dataset, "download_url", fake_download)
    result = run_recbole_dreamrec("DreamRec", "ml-1m", config_dict={
        "data_path": str(tmp_path / "data"), "epochs": 1, "timesteps": 10, "sampling_steps": 5, "show_progress": False})
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0  # no barrier crash (RecBole #2050)
    assert not torch.distributed.is_initialized()


class Interrupted(Exception):
    pass


def test_resume_reaches_the_same_state_as_an_uninterrupted_run(tiny_config_dict, in_tmp_dir, monkeypatch):
    from recbole.trainer import Trainer

    import recbole_dreamrec.quick_start as quick_start

    finals = []
    real_instrument = quick_start.instrument

    def recording(trainer_class):
        class Recorded(real_instrument(trainer_class)):
            def fit(self, *args, **kwargs):
                out = super().fit(*args, **kwargs)
                finals.append({k: v.clone() for k, v in self.model.state_dict().items()})
                return out

        return Recorded

    monkeypatch.setattr(quick_start, "instrument", recording)
    settings = {"epochs": 4, "stopping_step": 10}
    full = tiny_run(tiny_config_dict, **settings)

    real_train_epoch = Trainer._train_epoch

    def interrupt_at_epoch_2(self, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx == 2:
            raise Interrupted()
        return real_train_epoch(self, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupt_at_epoch_2)
    with pytest.raises(Interrupted):
        tiny_run(tiny_config_dict, **settings)
    monkeypatch.setattr(Trainer, "_train_epoch", real_train_epoch)
    last = sorted(Path(tiny_config_dict["checkpoint_dir"]).glob("*.last.pth"), key=lambda p: p.stat().st_mtime)[-1]
    assert torch.load(last, weights_only=False)["epoch"] == 1

    resumed = tiny_run(tiny_config_dict, **settings, resume_file=str(last))
    assert resumed["epochs_trained"] == 2  # epochs 2 and 3 only
    assert resumed["best_valid_result"] == full["best_valid_result"]
    assert resumed["test_result"] == full["test_result"]
    for key, value in finals[0].items():
        torch.testing.assert_close(finals[-1][key], value, rtol=0, atol=0)


def test_two_process_gloo_run_matches_one_process_in_order(tiny_config_dict, in_tmp_dir):
    from recbole_dreamrec.quick_start import run

    settings = {**tiny_config_dict, "epochs": 2}
    single = run("DreamRec", "ml-100k-tiny", config_dict=settings)
    double = run("DreamRec", "ml-100k-tiny", config_dict=settings, nproc=2, port="29517")
    assert double["config"]["world_size"] == 2 and double["config"]["single_spec"] is False
    assert str(double["config"]["device"]) == "cpu"
    for metric in ("ndcg@10", "hit@10"):
        assert 0.0 <= double["test_result"][metric] <= 1.0
        assert abs(double["test_result"][metric] - single["test_result"][metric]) < 0.1
