"""The DreamRec-paper data converter, on generated data, and a run on its output."""

import pandas as pd
import pytest

from recbole.data import create_dataset

from recbole_dreamrec import Config, run_recbole_dreamrec
from recbole_dreamrec.convert import convert_dreamrec_data

ITEM_NUM, SEQ_SIZE = 30, 6


def paper_frame(rows):
    """rows: (history, target) pairs -> the paper's layout, history padded on the right with item_num."""
    return pd.DataFrame({
        "seq": [h + [ITEM_NUM] * (SEQ_SIZE - len(h)) for h, _ in rows],
        "len_seq": [len(h) for h, _ in rows],
        "next": [t for _, t in rows],
    })


@pytest.fixture
def paper_data(tmp_path):
    source = tmp_path / "paper"
    source.mkdir()
    train = [([i % ITEM_NUM, (i + 1) % ITEM_NUM, (i + 2) % ITEM_NUM][: 1 + i % 3], (i + 3) % ITEM_NUM) for i in range(300)]
    train.append(([], 5))  # an empty history: dropped
    paper_frame(train).to_pickle(source / "train_data.df")
    paper_frame([([3, 4, 5], 6), ([7], 8), ([], 1)]).to_pickle(source / "val_data.df")
    paper_frame([([3, 4, 5, 6], 7), ([29, 0], 1)]).to_pickle(source / "test_data.df")
    pd.DataFrame({"seq_size": [SEQ_SIZE], "item_num": [ITEM_NUM]}).to_pickle(source / "data_statis.df")
    return source


def test_convert_writes_benchmark_files_and_counts_dropped_rows(paper_data, tmp_path):
    stats = convert_dreamrec_data(paper_data, tmp_path / "out", "toy")
    assert stats["splits"]["train"] == {"rows": 301, "written": 300, "dropped_empty_history": 1}
    assert stats["splits"]["valid"] == {"rows": 3, "written": 2, "dropped_empty_history": 1}
    lines = (tmp_path / "out" / "toy" / "toy.test.inter").read_text().splitlines()
    assert lines[0] == "session_id:token\titem_id_list:token_seq\titem_id:token"
    assert [line.split("\t")[1:] for line in lines[1:]] == [["3 4 5 6", "7"], ["29 0", "1"]]  # padding stripped


def test_converted_data_loads_with_shared_item_ids_and_trains(paper_data, tmp_path, in_tmp_dir):
    stats = convert_dreamrec_data(paper_data, tmp_path / "out", "toy")
    config_file = stats["paths"]["config"]
    config = Config(model="DreamRec", dataset="toy", config_file_list=[config_file])
    dataset = create_dataset(config)
    test = dataset.inter_feat.iloc[-2:]  # the test file's rows (a DataFrame until the dataloaders are built)
    history_ids = list(test["item_id_list"].iloc[0][:4])
    target_id = int(test["item_id"].iloc[0])
    token = lambda i: dataset.id2token("item_id", int(i))  # noqa: E731
    assert [token(i) for i in history_ids] == ["3", "4", "5", "6"] and token(target_id) == "7"
    assert int(test["item_length"].iloc[0]) == 4  # history ids decode through the target's token table (alias)

    result = run_recbole_dreamrec(
        "DreamRec", "toy", [config_file],
        {"epochs": 1, "timesteps": 10, "sampling_steps": 5, "train_batch_size": 64, "show_progress": False},
        saved=False,
    )
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


def test_missing_files_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected the DreamRec data layout"):
        convert_dreamrec_data(tmp_path, tmp_path / "out", "toy")
