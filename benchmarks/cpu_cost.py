"""CPU cost of finished runs recorded before CPU seconds were: one epoch and one validation measured anew.

    python benchmarks/cpu_cost.py --results benchmarks/results/ml-1m --models Pop,DreamRec,GRU4Rec \
        --data_path=../shared/datasets

Runs recorded since 2026-11-29 carry the CPU seconds of every epoch and validation (this process's CPU time, which
other jobs on the machine do not inflate, unlike the wall clock). For each named model of a ``compare.py`` folder,
this trains ``--epochs`` epochs (each validated, nothing saved) under the run's own setting files, writes the CPU
seconds of a training epoch and of a validation into ``runs/<Model>.json`` as ``cpu_cost`` (with the date and the
machine; nothing else in the record changes), and rebuilds the folder's tables, so that ``anytime.png`` can put
every run on the CPU clock. Any further ``--key=value`` is a setting the runs had besides their files (e.g.
``--data_path=DIR``). Measure on the machine the runs were made on.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole_dreamrec.analysis.benchmark import measure_cpu_cost, with_other_runs  # noqa: E402
from recbole_dreamrec.analysis.tables import TABLE_METRICS, write_tables  # noqa: E402
from recbole_dreamrec.cli import extra_settings  # noqa: E402
from recbole_dreamrec.errors import InputNotFoundError, add_debug_flag, main_guard  # noqa: E402
from recbole_dreamrec.reporting import atomic_write_text  # noqa: E402


def table_metrics(results):
    """The test metrics of the folder's ``results.csv`` (the tables are rebuilt with the same columns)."""
    try:
        with open(Path(results) / "results.csv", newline="") as f:
            header = next(csv.reader(f))
    except (OSError, StopIteration):
        return list(TABLE_METRICS)
    return [h[len("test "):] for h in header if h.startswith("test ")] or list(TABLE_METRICS)


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="a compare.py results folder")
    parser.add_argument("--models", required=True, help="comma separated finished runs of the folder")
    parser.add_argument("--epochs", type=int, default=1, help="epochs measured per model (each validated)")
    add_debug_flag(parser)
    args, extra = parser.parse_known_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    config_dict = extra_settings(parser, extra)
    results = Path(args.results)
    files = [results / "runs" / f"{m}.json" for m in args.models.split(",") if m]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputNotFoundError(f"{missing[0]} not found: cpu_cost.py measures finished runs of compare.py")
    records = []
    for path in files:
        record = json.loads(path.read_text())
        record["cpu_cost"] = measure_cpu_cost(record, config_dict, args.epochs)
        atomic_write_text(path, json.dumps(record, indent=1))
        cost = record["cpu_cost"]
        print(f"{record['model']}: {cost['train_cpu_seconds_per_epoch']:.1f} CPU s a training epoch, "
              f"{cost['valid_cpu_seconds']:.1f} a validation")
        records.append(record)
    write_tables(with_other_runs([], results), results, records[0]["dataset"], table_metrics(results))
    return records


if __name__ == "__main__":
    main()
