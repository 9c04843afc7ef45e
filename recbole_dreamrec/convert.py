"""Convert the DreamRec paper's released data layout to RecBole pre-split benchmark files.

The released layout (e.g. the paper's ``data/zhihu``; see ``shared/datasets/dreamrec-zhihu/README.md``) is four
pandas pickles: ``train_data.df``, ``val_data.df`` and ``test_data.df`` with one row per (history, target) pair and
``data_statis.df`` with ``seq_size`` and ``item_num``. In each row:

- item ids are the integers ``0 .. item_num-1``, and ``item_num`` is the padding id;
- ``seq`` holds exactly ``seq_size`` ids: the real history (oldest first), then padding on the right;
- ``len_seq`` is the number of real ids in ``seq``, except that an empty history (a session's first event) is
  stored as ``len_seq`` 1 with ``seq`` all padding;
- ``next`` is the target item.

Anything else is rejected with an error naming the file, the row and what is wrong (no silent truncation of
float ids, no history longer than ``seq_size``, no padding inside the history).

The output is RecBole's benchmark format, one row per (history, target) pair:
``<name>/<name>.{train,valid,test}.inter`` with ``row_id:token  session_id:token  item_id_list:token_seq
item_id:token``, and a config file ``<name>.yaml`` that loads them: ``benchmark_filename``,
``alias_of_item_id: [item_id_list]`` (history and target ids share one token space), ``eval_args.order: TO``, and
``row_id`` as the user id. Every row is its own "user", so that every model, general ones such as ``Pop`` included,
is evaluated per row as the paper does (RecBole evaluates a general model per user, with all of that user's
targets as positives).

Empty histories. Every RecBole sequential model reads the history's last item (index ``item_length - 1``) and
fails on an empty one, while the paper evaluates every test row. ``empty_history='start'`` (the default) writes
the history of such a row as the single token :data:`START_TOKEN`, an extra item that is never a target and that
every model reads like any other item (one more candidate in full ranking, which a trained model learns to rank
low); the rows are kept, so metrics follow the paper's all-rows protocol. ``empty_history='drop'`` drops them.
Both are counted per split.

Session ids. The released rows of a session are consecutive, each history being the previous row's history plus
the previous row's target (cut to the last ``seq_size``). Rows are grouped into sessions that way (a new session
starts at an empty history or wherever the chain breaks) and the session is written as ``session_id`` (not loaded
by the emitted config; add it to ``load_col`` to use it).
"""

import json
import numbers
import os
from pathlib import Path

import pandas as pd
import yaml

from recbole_dreamrec.errors import ConfigError, DataError, InputNotFoundError

SPLITS = {"train": "train_data.df", "valid": "val_data.df", "test": "test_data.df"}
HEADER = "row_id:token\tsession_id:token\titem_id_list:token_seq\titem_id:token\n"
START_TOKEN = "start"
EMPTY_HISTORY = ("start", "drop")


class PaperFormatError(DataError):
    """A released data file does not follow the paper's layout."""


def _item_id(value, where, what):
    """``value`` as an int id; a float id must be integral (ids are never truncated)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PaperFormatError(f"{where}: {what} {value!r} is not a number")
    if isinstance(value, numbers.Integral):
        return int(value)
    if float(value).is_integer():
        return int(value)
    raise PaperFormatError(f"{where}: {what} {value!r} is not an integer id")


def parse_row(seq, len_seq, target, seq_size, item_num, where):
    """One released row -> ``(history ids, target id)``; the history is ``[]`` for an empty history.

    Raises:
        PaperFormatError: naming ``where`` (file and row) and what breaks the layout.
    """
    seq = [_item_id(i, where, "seq id") for i in list(seq)]
    length = _item_id(len_seq, where, "len_seq")
    target = _item_id(target, where, "next")
    if len(seq) != seq_size:
        raise PaperFormatError(f"{where}: seq has {len(seq)} ids, expected seq_size = {seq_size}")
    if not 1 <= length <= seq_size:
        raise PaperFormatError(
            f"{where}: len_seq {length} outside 1..{seq_size} (an empty history is stored as len_seq 1 and all padding)"
        )
    if not 0 <= target < item_num:
        raise PaperFormatError(f"{where}: next {target} outside 0..{item_num - 1}")
    if length == 1 and all(i == item_num for i in seq):
        return [], target
    history, padding = seq[:length], seq[length:]
    if any(not 0 <= i < item_num for i in history):
        raise PaperFormatError(
            f"{where}: the first len_seq = {length} ids of seq must be items in 0..{item_num - 1}, got {history}"
        )
    if any(i != item_num for i in padding):
        raise PaperFormatError(
            f"{where}: seq must be padded on the right with item_num = {item_num} after len_seq = {length} ids, "
            f"got {seq}"
        )
    return history, target


def _continues(previous, history, seq_size):
    """Whether ``history`` is the row after ``previous`` in one session (its history plus its target)."""
    if previous is None:
        return False
    prev_history, prev_target = previous
    return bool(history) and history == (prev_history + [prev_target])[-seq_size:]


def convert_dreamrec_data(source_dir, out_dir, name, empty_history="start"):
    """Write RecBole benchmark files and a config for the paper-format data in ``source_dir``.

    Args:
        source_dir: the folder with the four released pickles.
        out_dir: the output ``data_path``; files go to ``out_dir/name/``. The emitted config names it as given
            (a relative ``out_dir`` stays relative: run from the same folder).
        name: the dataset name.
        empty_history: ``'start'`` (keep empty-history rows with the history ``[START_TOKEN]``) or ``'drop'``.

    Returns:
        dict: ``seq_size``, ``item_num``, ``empty_history``, per split ``rows``, ``written``,
        ``empty_history_rows`` (kept with the start token or dropped), ``dropped`` and ``sessions``, and the paths
        written.
    """
    if empty_history not in EMPTY_HISTORY:
        raise ConfigError(f"empty_history must be one of {list(EMPTY_HISTORY)}, got {empty_history!r}")
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    missing = [f for f in [*SPLITS.values(), "data_statis.df"] if not (source_dir / f).is_file()]
    if missing:
        raise InputNotFoundError(f"{source_dir} lacks {missing}: expected the DreamRec data layout")
    statis = pd.read_pickle(source_dir / "data_statis.df")
    for column in ("seq_size", "item_num"):
        if column not in statis.columns:
            raise PaperFormatError(f"data_statis.df: no column {column!r} (found {list(statis.columns)})")
    seq_size = _item_id(statis["seq_size"].iloc[0], "data_statis.df", "seq_size")
    item_num = _item_id(statis["item_num"].iloc[0], "data_statis.df", "item_num")

    frames = {split: pd.read_pickle(source_dir / filename) for split, filename in SPLITS.items()}
    for split, frame in frames.items():
        absent = [c for c in ("seq", "len_seq", "next") if c not in frame.columns]
        if absent:
            raise PaperFormatError(f"{SPLITS[split]}: no column(s) {absent} (found {list(frame.columns)})")

    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    stats = {"seq_size": seq_size, "item_num": item_num, "empty_history": empty_history, "splits": {}}
    session = row_id = 0
    for split, frame in frames.items():
        filename = SPLITS[split]
        lines, previous = [], None
        empty = 0
        sessions_before = session
        for row, (seq, len_seq, target) in enumerate(zip(frame["seq"], frame["len_seq"], frame["next"])):
            history, target = parse_row(seq, len_seq, target, seq_size, item_num, f"{filename} row {row}")
            if not _continues(previous, history, seq_size):
                session += 1
            previous = (history, target)
            if not history:
                empty += 1
                if empty_history == "drop":
                    continue
            tokens = " ".join(map(str, history)) if history else START_TOKEN
            row_id += 1
            lines.append(f"{row_id}\t{session}\t{tokens}\t{target}\n")
        with open(folder / f"{name}.{split}.inter", "w", encoding="utf-8") as f:
            f.write(HEADER)
            f.writelines(lines)
        stats["splits"][split] = {
            "rows": len(frame),
            "written": len(lines),
            "empty_history_rows": empty,
            "dropped": len(frame) - len(lines),
            "sessions": session - sessions_before,
        }
    config = {
        "data_path": out_dir.as_posix() if not out_dir.is_absolute() else os.path.relpath(out_dir),
        "dataset": name,
        "benchmark_filename": list(SPLITS),
        "alias_of_item_id": ["item_id_list"],
        "USER_ID_FIELD": "row_id",
        "load_col": {"inter": ["row_id", "item_id_list", "item_id"]},
        "MAX_ITEM_LIST_LENGTH": seq_size,
        "eval_args": {"order": "TO", "mode": "full"},
    }
    paths = {"config": out_dir / f"{name}.yaml", "stats": out_dir / f"{name}.stats.json"}
    header = (
        f"# RecBole settings for the DreamRec-format data converted from {source_dir.name}/ "
        f"(empty histories: {empty_history}). data_path is relative to the folder the converter ran in.\n"
    )
    paths["config"].write_text(header + yaml.safe_dump(config, sort_keys=False))
    paths["stats"].write_text(json.dumps(stats, indent=1))
    return {**stats, "paths": {k: str(v) for k, v in paths.items()}}


def summary(stats):
    """One line per split: rows read, written, empty histories and what happened to them."""
    fate = "kept with the start token" if stats["empty_history"] == "start" else "dropped"
    lines = []
    for split, s in stats["splits"].items():
        lines.append(
            f"{split}: {s['rows']} rows read, {s['written']} written, {s['empty_history_rows']} empty histories "
            f"{fate}, {s['dropped']} rows lost; {s['sessions']} sessions"
        )
    return "\n".join(lines)
