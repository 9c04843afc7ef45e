"""Test metrics of a comparison's checkpoints as RecBole computes them and with seen items masked for every model.

RecBole's full-sort evaluation ranks only unseen items for general models (Pop) but all items for sequential
models (SASRec, DreamRec, ...). On data where a user never interacts with an item twice (MovieLens ratings) that
favours Pop. This re-evaluates every finished run of a ``compare.py`` results folder both ways:

    python benchmarks/masked_eval.py --results benchmarks/results/ml-100k

and writes ``masked.md`` and ``masked.csv`` there. Weights, data and seed are those of the runs.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole_dreamrec.analysis.benchmark import finished_run_files  # noqa: E402
from recbole_dreamrec.errors import InputNotFoundError, add_debug_flag, main_guard  # noqa: E402
from recbole_dreamrec.analysis.evaluation import Checkpoint  # noqa: E402
from recbole_dreamrec.reporting import write_table  # noqa: E402

METRICS = ("ndcg@10", "hit@10", "ndcg@20", "hit@20")


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(description="Re-evaluate a comparison with seen items masked for every model.")
    parser.add_argument("--results", required=True, help="a compare.py results folder")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    results = Path(args.results)
    runs = [json.loads(path.read_text()) for path in finished_run_files(results)]
    runs = [run for run in runs if run["status"] == "ok"]
    if not runs:
        raise InputNotFoundError(f"no finished runs in {results / 'runs'}: run benchmarks/compare.py --out {results}")

    table = []
    for run in runs:
        checkpoint = Checkpoint(run["model_file"])
        (as_recbole,) = checkpoint.evaluate()
        (masked,) = checkpoint.evaluate(mask_history=True)
        table.append([run["model"]] + [f"{as_recbole[m]:.4f}" for m in METRICS] + [f"{masked[m]:.4f}" for m in METRICS])
    table.sort(key=lambda row: -float(row[len(METRICS) + 1]))
    header = ["model"] + [f"{m} (RecBole)" for m in METRICS] + [f"{m} (seen masked)" for m in METRICS]
    dataset = runs[0]["dataset"] if runs else ""
    before = [
        f"# {dataset}: test metrics as RecBole computes them, and with seen items masked for every model",
        "",
        "RecBole masks a user's earlier items for general models (Pop) only. Same checkpoints, data and seed.",
        "",
    ]
    print(write_table(results / "masked.md", results / "masked.csv", header, table, before=before), end="")


if __name__ == "__main__":
    main()
