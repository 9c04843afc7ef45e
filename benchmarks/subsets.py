"""Test metrics on all rows, on the rows with an empty history and on the others, for every finished run of a
comparison on data converted from the DreamRec paper's layout (empty histories kept as a start token):

    python benchmarks/subsets.py --results benchmarks/results/zhihu \
        --results "benchmarks/results/ablation/zhihu:lr0.001-ddim-cosine__seed*"

The paper evaluates every test row; the non-empty rows are the protocol of runs that drop empty histories. Writes
``subsets.md`` and ``subsets.csv`` in the results folder (the same checkpoints, one evaluation per subset).
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole_dreamrec.analysis.benchmark import finished_run_files  # noqa: E402
from recbole_dreamrec.errors import InputNotFoundError, add_debug_flag, main_guard  # noqa: E402
from recbole_dreamrec.analysis.evaluation import evaluate_history_subsets  # noqa: E402
from recbole_dreamrec.reporting import write_table  # noqa: E402

SUBSETS = ("all", "nonempty", "empty")


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, action="append",
                        help="a results folder with runs/, optionally FOLDER:GLOB to take only runs/GLOB.json "
                        "(repeatable)")
    parser.add_argument("--metrics", default="hit@20,ndcg@20", help="metrics per subset, comma separated")
    parser.add_argument("--out", default=None, help="output folder (default: the first results folder)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    metrics = [m for m in args.metrics.split(",") if m]
    runs = []
    for entry in args.results:
        folder, _, pattern = entry.partition(":")
        files = finished_run_files(folder, pattern or "*")
        if not files:
            raise InputNotFoundError(f"{folder}: no finished runs (runs/*.json)")
        runs += [(folder, json.loads(f.read_text())) for f in files]
    rows, counts = [], {}
    for folder, record in runs:
        if record.get("status") != "ok" or not record.get("model_file"):
            continue
        result = evaluate_history_subsets(record["model_file"])
        counts = {name: result[name]["rows"] for name in SUBSETS}
        label = record["model"]
        if record.get("variant"):  # a run of benchmarks/ablation.py
            label += f" ({record['variant']}, seed {record['seed']})"
        elif folder != args.results[0].partition(":")[0]:
            label += f" ({Path(folder).name})"
        rows.append([label] + [f"{result[name][m]:.4f}" for name in SUBSETS for m in metrics])
        print(rows[-1], flush=True)
    header = ["model"] + [f"{name} {m}" for name in SUBSETS for m in metrics]
    out = Path(args.out or args.results[0].partition(":")[0])
    write_table(out / "subsets.md", out / "subsets.csv", header, rows,
                before=["# Test metrics by history: all rows (the paper's protocol), non-empty and empty histories", ""],
                after=["", f"Rows: all {counts.get('all')}, non-empty {counts.get('nonempty')}, empty "
                       f"{counts.get('empty')} (empty histories are read as the start token). Same checkpoints as "
                       "`runs/`."])
    return rows


if __name__ == "__main__":
    main()
