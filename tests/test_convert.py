"""The DreamRec-paper data converter, on a fixture written exactly in the released layout, and a run on its
output."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from recbole.data import create_dataset

from recbole_dreamrec import Config, run_recbole_dreamrec
from recbole_dreamrec.convert import START_TOKEN, PaperFormatError, convert_dreamrec_data

ROOT = Path(__file__).resolve().parents[1]
ITEM_NUM, SEQ_SIZE = 30, 6
PAD = ITEM_NUM


def released_rows(sessions):
    """The released layout's rows for whole sessions: each event is predicted from the items before it (the last
    SEQ_SIZE), an empty history being stored as len_seq 1 with seq all padding."""
    rows = []
    for session in sessions:
        for n, target in enumerate(session):
            history = session[:n][-SEQ_SIZE:]
            rows.append((history + [PAD] * (SEQ_SIZE - len(history)), max(len(history), 1), target))
    return rows


def released_frame(rows):
    """Rows ``(seq, len_seq, next)`` as the released pickles hold them: ``seq`` a list of Python ints, int64
    columns."""
    return pd.DataFrame({
        "seq": [list(seq) for seq, _, _ in rows],
        "len_seq": pd.Series([length for _, length, _ in rows], dtype="int64"),
        "next": pd.Series([target for _, _, target in rows], dtype="int64"),
    })


def write_released(folder, train, valid, test):
    folder.mkdir(parents=True, exist_ok=True)
    released_frame(train).to_pickle(folder / "train_data.df")
    released_frame(valid).to_pickle(folder / "val_data.df")
    released_frame(test).to_pickle(folder / "test_data.df")
    pd.DataFrame({"seq_size": [SEQ_SIZE], "item_num": [ITEM_NUM]}).to_pickle(folder / "data_statis.df")
    return folder


TRAIN_SESSIONS = [[(s * 7 + k * 3) % ITEM_NUM for k in range(2 + s % 9)] for s in range(60)]
VALID_SESSIONS = [[3, 4, 5, 6], [7, 8]]
TEST_SESSIONS = [[1, 2, 3, 4, 5, 6, 7, 9], [29, 0, 1]]


@pytest.fixture
def released(tmp_path):
    return write_released(
        tmp_path / "paper", released_rows(TRAIN_SESSIONS), released_rows(VALID_SESSIONS), released_rows(TEST_SESSIONS)
    )


def read_inter(path):
    lines = Path(path).read_text().splitlines()
    return lines[0], [line.split("\t") for line in lines[1:]]


def test_the_fixture_has_the_released_empty_history_encoding(released):
    frame = pd.read_pickle(released / "test_data.df")
    assert list(frame.columns) == ["seq", "len_seq", "next"]
    assert frame["seq"][0] == [PAD] * SEQ_SIZE and frame["len_seq"][0] == 1 and frame["next"][0] == 1
    assert frame["seq"][7] == [2, 3, 4, 5, 6, 7] and frame["len_seq"][7] == 6  # the last SEQ_SIZE items


def test_empty_histories_are_kept_with_the_start_token_and_sessions_grouped(released, tmp_path):
    stats = convert_dreamrec_data(released, tmp_path / "out", "toy")
    assert stats["splits"]["test"] == {"rows": 11, "written": 11, "empty_history_rows": 2, "dropped": 0, "sessions": 2}
    assert stats["splits"]["train"]["sessions"] == 60
    header, rows = read_inter(tmp_path / "out" / "toy" / "toy.test.inter")
    assert header == "row_id:token\tsession_id:token\titem_id_list:token_seq\titem_id:token"
    assert rows[0][2:] == [START_TOKEN, "1"]
    assert rows[1][2:] == ["1", "2"] and rows[7][2:] == ["2 3 4 5 6 7", "9"]  # padding stripped, order kept
    assert rows[8][2:] == [START_TOKEN, "29"]
    assert len({r[1] for r in rows[:8]}) == 1 and rows[8][1] != rows[0][1]  # one session id per session
    assert len({r[0] for r in rows}) == len(rows)  # one row id per row: every model is evaluated per row
    train = read_inter(tmp_path / "out" / "toy" / "toy.train.inter")[1]
    assert not {r[1] for r in train} & {r[1] for r in rows}  # sessions and rows are numbered across the splits
    assert not {r[0] for r in train} & {r[0] for r in rows}


def test_drop_removes_empty_histories_and_counts_them(released, tmp_path):
    stats = convert_dreamrec_data(released, tmp_path / "out", "toy", empty_history="drop")
    assert stats["splits"]["valid"] == {"rows": 6, "written": 4, "empty_history_rows": 2, "dropped": 2, "sessions": 2}
    _, rows = read_inter(tmp_path / "out" / "toy" / "toy.valid.inter")
    assert [r[2:] for r in rows] == [["3", "4"], ["3 4", "5"], ["3 4 5", "6"], ["7", "8"]]


def test_the_config_names_data_path_as_given(released, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stats = convert_dreamrec_data(released, "out", "toy")
    config = yaml.safe_load(Path(stats["paths"]["config"]).read_text())
    assert config["data_path"] == "out"
    assert config["alias_of_item_id"] == ["item_id_list"] and config["MAX_ITEM_LIST_LENGTH"] == SEQ_SIZE


def broken(rows, index, seq=None, length=None, target=None):
    rows = list(rows)
    old_seq, old_length, old_target = rows[index]
    rows[index] = (old_seq if seq is None else seq, old_length if length is None else length,
                   old_target if target is None else target)
    return rows


@pytest.mark.parametrize("seq, length, target, message", [
    ([1, 2, PAD, PAD, PAD, PAD], 0, 3, "len_seq 0 outside 1..6"),
    ([1, 2, 3, 4, 5, 6], 7, 3, "len_seq 7 outside 1..6"),
    ([1, 2, PAD, PAD, PAD], 2, 3, "seq has 5 ids, expected seq_size = 6"),
    ([PAD, PAD, PAD, PAD, 1, 2], 2, 3, "the first len_seq = 2 ids of seq must be items"),  # left padding
    ([1, 2, PAD, 4, PAD, PAD], 2, 3, "padded on the right"),
    ([1.0, 2.5, PAD, PAD, PAD, PAD], 2, 3, "2.5 is not an integer id"),
    ([1, 2, PAD, PAD, PAD, PAD], 2, 31, "next 31 outside 0..29"),
    ([1, -1, PAD, PAD, PAD, PAD], 2, 3, "must be items in 0..29"),
])
def test_anything_but_the_released_layout_is_refused_with_file_and_row(tmp_path, seq, length, target, message):
    test = broken(released_rows(TEST_SESSIONS), 4, seq, length, target)
    source = write_released(tmp_path / "paper", released_rows(TRAIN_SESSIONS), released_rows(VALID_SESSIONS), test)
    with pytest.raises(PaperFormatError, match="test_data.df row 4") as error:
        convert_dreamrec_data(source, tmp_path / "out", "toy")
    assert message in str(error.value)


def test_integral_float_ids_are_read_as_ints(tmp_path):
    test = broken(released_rows(TEST_SESSIONS), 2, seq=[1.0, 2.0, PAD, PAD, PAD, PAD])
    source = write_released(tmp_path / "paper", released_rows(TRAIN_SESSIONS), released_rows(VALID_SESSIONS), test)
    convert_dreamrec_data(source, tmp_path / "out", "toy")
    assert read_inter(tmp_path / "out" / "toy" / "toy.test.inter")[1][2][2] == "1 2"


def test_missing_files_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected the DreamRec data layout"):
        convert_dreamrec_data(tmp_path, tmp_path / "out", "toy")


def test_command_line_reports_each_split_and_fails_cleanly(released, tmp_path):
    script = ROOT / "benchmarks" / "convert_dreamrec_data.py"
    done = subprocess.run([sys.executable, str(script), "--source", str(released), "--out", "out", "--name", "toy",
                           "--empty_history", "drop"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "test: 11 rows read, 9 written, 2 empty histories dropped, 2 rows lost; 2 sessions" in done.stdout
    assert (tmp_path / "out" / "toy" / "toy.train.inter").is_file()
    failed = subprocess.run([sys.executable, str(script), "--source", str(tmp_path), "--out", "out", "--name", "x"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert failed.returncode == 2 and "expected the DreamRec data layout" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_converted_data_loads_with_shared_item_ids_and_trains(released, tmp_path, in_tmp_dir):
    stats = convert_dreamrec_data(released, tmp_path / "out", "toy")
    config_file = stats["paths"]["config"]
    config = Config(model="DreamRec", dataset="toy", config_file_list=[config_file])
    dataset = create_dataset(config)
    rows = sum(split["written"] for split in stats["splits"].values())
    assert dataset.user_num - 1 == rows  # every row is its own user: Pop too is evaluated per row
    test = dataset.inter_feat.iloc[-3:]  # the test file's last session: start, 29, 29 0
    token = lambda i: dataset.id2token("item_id", int(i))  # noqa: E731
    assert token(test["item_id_list"].iloc[0][0]) == START_TOKEN and int(test["item_length"].iloc[0]) == 1
    assert [token(i) for i in test["item_id_list"].iloc[2][:2]] == ["29", "0"] and token(test["item_id"].iloc[2]) == "1"

    result = run_recbole_dreamrec(
        "DreamRec", "toy", [config_file],
        {"epochs": 1, "timesteps": 10, "sampling_steps": 5, "train_batch_size": 64, "show_progress": False},
        saved=False,
    )
    hits = result["test_result"]["hit@10"] * 11  # every one of the 11 test rows is evaluated (metrics: 4 decimals)
    assert hits == pytest.approx(round(hits), abs=0.01)


def test_history_subsets_split_the_test_rows_and_add_up(released, tmp_path, in_tmp_dir):
    from recbole_dreamrec.analysis.evaluation import evaluate_history_subsets

    stats = convert_dreamrec_data(released, tmp_path / "out", "toy")
    result = run_recbole_dreamrec(
        "DreamRec", "toy", [stats["paths"]["config"]],
        {"epochs": 1, "timesteps": 10, "sampler": "ddim", "sampling_steps": 5, "train_batch_size": 64,
         "show_progress": False, "checkpoint_dir": str(tmp_path / "saved"), "metrics": ["Hit"], "topk": [3, 10],
         "valid_metric": "Hit@10"},
    )
    subsets = evaluate_history_subsets(result["model_file"])
    assert (subsets["all"]["rows"], subsets["empty"]["rows"], subsets["nonempty"]["rows"]) == (11, 2, 9)
    for metric in ("hit@3", "hit@10"):
        assert subsets["all"][metric] == pytest.approx(result["test_result"][metric], abs=1e-4)
        hits = subsets["empty"][metric] * 2 + subsets["nonempty"][metric] * 9
        assert hits == pytest.approx(subsets["all"][metric] * 11, abs=2e-3)  # metrics are rounded to 4 decimals


def test_svd_codes_can_group_the_training_rows_by_session(released, tmp_path, in_tmp_dir):
    from recbole.data import data_preparation

    from recbole_dreamrec import DreamRec
    from recbole_dreamrec.errors import ConfigError
    from recbole_dreamrec.model.item_init import sequential_interaction_matrix

    stats = convert_dreamrec_data(released, tmp_path / "out", "toy")
    settings = {"load_col": {"inter": ["row_id", "session_id", "item_id_list", "item_id"]},
                "svd_group_field": "session_id", "hidden_size": 8}
    config = Config(model="DreamRec", dataset="toy", config_file_list=[stats["paths"]["config"]], config_dict=settings)
    train = data_preparation(config, create_dataset(config))[0].dataset
    model = DreamRec(config, train)
    by_session = sequential_interaction_matrix(train, model, "session_id").toarray()
    by_row = sequential_interaction_matrix(train, model).toarray()
    # one row per session id of every split (RecBole numbers the tokens of all files) plus padding; only the 60
    # training sessions have items
    assert by_session.shape[0] == 64 + 1 and (by_session.sum(axis=1) > 0).sum() == 60
    assert (by_row.sum(axis=1) > 0).sum() == len(train.inter_feat)  # one row per training row otherwise
    # a session's row holds every item of the session (history and targets), read through the token table
    session_token = train.id2token("session_id", 1)
    items = {train.id2token("item_id", i) for i in by_session[1].nonzero()[0]}
    first = next(s for n, s in enumerate(TRAIN_SESSIONS, start=1) if str(n) == session_token)
    assert items == {str(i) for i in first} | {START_TOKEN}

    config["svd_group_field"] = "no_such_field"
    with pytest.raises(ConfigError, match="svd_group_field 'no_such_field' is not a loaded field"):
        DreamRec(config, train)
