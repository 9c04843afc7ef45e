"""Convert the DreamRec paper's released data layout to RecBole pre-split benchmark files.

The paper's data folders hold pandas pickles ``train_data.df``, ``val_data.df`` and ``test_data.df`` with columns
``seq`` (the history, padded on the right to ``seq_size`` with the pad id ``item_num``), ``len_seq`` and ``next``
(the target), plus ``data_statis.df`` with ``seq_size`` and ``item_num``; item ids are ``0 .. item_num-1``.

The output is RecBole's benchmark format, one row per (history, target) pair:
``<name>/<name>.{train,valid,test}.inter`` with ``session_id:token  item_id_list:token_seq  item_id:token``, and a
config file ``<name>.yaml`` that loads them correctly: ``benchmark_filename``, ``alias_of_item_id: [item_id_list]``
(so history and target ids share one token space) and ``eval_args.order: TO``. Rows with an empty history
(``len_seq`` 0) cannot be used by any sequential model (position index -1) and are dropped and counted.
"""

import json
from pathlib import Path

import pandas as pd
import yaml

SPLITS = {"train": "train_data.df", "valid": "val_data.df", "test": "test_data.df"}
HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token\n"


def convert_dreamrec_data(source_dir, out_dir, name):
    """Write RecBole benchmark files and a config for the paper-format data in ``source_dir``.

    Returns:
        dict: statistics per split (rows read, rows written, empty histories dropped), ``seq_size``,
        ``item_num`` and the paths written.
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    missing = [f for f in [*SPLITS.values(), "data_statis.df"] if not (source_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{source_dir} lacks {missing}: expected the DreamRec data layout")
    statis = pd.read_pickle(source_dir / "data_statis.df")
    seq_size, item_num = int(statis["seq_size"].iloc[0]), int(statis["item_num"].iloc[0])
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    stats = {"seq_size": seq_size, "item_num": item_num, "splits": {}}
    session = 0
    for split, filename in SPLITS.items():
        frame = pd.read_pickle(source_dir / filename)
        written = dropped = 0
        with open(folder / f"{name}.{split}.inter", "w", encoding="utf-8") as f:
            f.write(HEADER)
            for seq, length, target in zip(frame["seq"], frame["len_seq"], frame["next"]):
                history = [int(i) for i in list(seq)[: int(length)]]
                if any(i < 0 or i >= item_num for i in history + [int(target)]):
                    raise ValueError(f"{filename}: item id outside 0..{item_num - 1} in row {written + dropped}")
                if not history:
                    dropped += 1
                    continue
                session += 1
                f.write(f"{session}\t{' '.join(map(str, history))}\t{int(target)}\n")
                written += 1
        stats["splits"][split] = {"rows": written + dropped, "written": written, "dropped_empty_history": dropped}
    config = {
        "data_path": str(out_dir.resolve()),
        "dataset": name,
        "benchmark_filename": list(SPLITS),
        "alias_of_item_id": ["item_id_list"],
        "USER_ID_FIELD": "session_id",
        "load_col": {"inter": ["session_id", "item_id_list", "item_id"]},
        "MAX_ITEM_LIST_LENGTH": seq_size,
        "eval_args": {"order": "TO", "mode": "full"},
    }
    paths = {"config": out_dir / f"{name}.yaml", "stats": out_dir / f"{name}.stats.json"}
    paths["config"].write_text(yaml.safe_dump(config, sort_keys=False))
    paths["stats"].write_text(json.dumps(stats, indent=1))
    return {**stats, "paths": {k: str(v) for k, v in paths.items()}}
