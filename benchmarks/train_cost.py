"""Training cost: CPU seconds of a DreamRec epoch and per 1,000 training targets, RecBole's rows against training
windows, at several widths, beside a RecBole baseline's epoch measured in the same process.

    OMP_NUM_THREADS=1 python benchmarks/train_cost.py --dataset ml-100k \
        --config_files benchmarks/configs/ml-100k.yaml --train_batch_size=2048 \
        --hidden_sizes 64,128,256 --strides 0,50,25 --baselines GRU4Rec --out benchmarks/results/train-cost

One process loads the data once, then for each hidden size H and window stride S (0: RecBole's rows) builds DreamRec
at its defaults otherwise and trains it for one epoch (or ``--max_batches`` batches, the epoch's cost then scaled
from them, and marked so), timing this process's CPU seconds (``time.process_time``: other jobs on the machine do
not inflate it; run with ``OMP_NUM_THREADS=1`` for one core's cost). Each baseline of ``--baselines`` trains one
epoch the same way. A training step is RecBole's (zero the gradients, the model's ``calculate_loss``, backward,
Adam step); data loading is counted. Writes ``<out>/<dataset>.md`` and ``.csv`` with the command and the machine.
Any further ``--key=value`` applies to every model (e.g. ``--data_path=DIR``, ``--train_batch_size=2048``).
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole.data import data_preparation  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_dreamrec.reporting import machine_info  # noqa: E402
from recbole_dreamrec.checks import load_dataset  # noqa: E402
from recbole_dreamrec.cli import extra_settings  # noqa: E402
from recbole_dreamrec.config import Config  # noqa: E402
from recbole_dreamrec.data import WINDOW_TARGETS_FIELD, train_loader  # noqa: E402
from recbole_dreamrec.errors import add_debug_flag, main_guard  # noqa: E402
from recbole_dreamrec.reporting import write_table  # noqa: E402
from recbole_dreamrec.utils import get_model  # noqa: E402


def epoch_cost(config, rows_loader, max_batches=None):
    """Train ``config``'s model on its training loader (RecBole's rows, or DreamRec's windows) for one epoch or
    ``max_batches`` batches; return the measured CPU seconds, the batches and targets trained, and the epoch's."""
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, rows_loader._dataset)
    loader = train_loader(config, rows_loader)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    model.train()
    batches = targets = 0
    start = time.process_time()
    for batch in loader:
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        batches += 1
        targets += int(batch[WINDOW_TARGETS_FIELD].sum()) if WINDOW_TARGETS_FIELD in batch else len(batch)
        if max_batches and batches >= max_batches:
            break
    seconds = time.process_time() - start
    epoch_targets = len(rows_loader._dataset)
    return {"cpu_seconds": seconds, "batches": batches, "of_batches": len(loader), "targets": targets,
            "epoch_cpu_seconds": seconds * epoch_targets / targets, "per_1k_targets": 1000 * seconds / targets,
            "num_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def measure(dataset, config_files, config_dict, hidden_sizes, strides, baselines, max_batches=None, log=print):
    """The table's rows: DreamRec at each (H, S), then each baseline, on one loaded dataset."""
    base = Config("DreamRec", dataset, config_files, config_dict)
    init_seed(base["seed"], base["reproducibility"])
    data = load_dataset(base)
    rows_loader = data_preparation(base, data)[0]
    results = []
    for model in baselines:
        config = Config(model, dataset, config_files, config_dict)
        result = epoch_cost(config, rows_loader, max_batches)
        results.append({"model": model, "hidden_size": config["hidden_size"], "window_stride": "", **result})
        log(f"{model}: {result['epoch_cpu_seconds']:.1f} CPU s an epoch")
    for hidden_size in hidden_sizes:
        for stride in strides:
            config = Config("DreamRec", dataset, config_files,
                            {**config_dict, "hidden_size": hidden_size, "window_stride": stride})
            result = epoch_cost(config, rows_loader, max_batches)
            results.append({"model": "DreamRec", "hidden_size": hidden_size, "window_stride": stride, **result})
            log(f"DreamRec H={hidden_size} S={stride}: {result['epoch_cpu_seconds']:.1f} CPU s an epoch")
    return results


def table(results, reference=None):
    """Header and rows; ``reference`` (a baseline's name): a column with each epoch's cost relative to its."""
    ref = next((r["epoch_cpu_seconds"] for r in results if r["model"] == reference), None)
    header = ["model", "hidden_size", "window_stride (0: RecBole's rows)", "CPU s/epoch", "CPU s per 1,000 targets",
              "batches timed", "params"]
    if ref:
        header.insert(4, f"epoch / {reference}'s")
    rows = []
    for r in results:
        scaled = "" if r["batches"] == r["of_batches"] else f" (from {r['batches']} of {r['of_batches']})"
        row = [r["model"], r["hidden_size"], r["window_stride"], f"{r['epoch_cpu_seconds']:.1f}{scaled}",
               f"{r['per_1k_targets']:.3f}", f"{r['batches']}/{r['of_batches']}", r["num_params"]]
        if ref:
            row.insert(4, f"{r['epoch_cpu_seconds'] / ref:.2f}")
        rows.append(row)
    return header, rows


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default ml-100k)")
    parser.add_argument("--config_files", default="", help="shared setting, space separated")
    parser.add_argument("--hidden_sizes", default="64,128,256", help="DreamRec hidden sizes H, comma separated")
    parser.add_argument("--strides", default="0,50,25", help="window strides S (0: RecBole's rows), comma separated")
    parser.add_argument("--baselines", default="GRU4Rec", help="RecBole models timed in the same process")
    parser.add_argument("--max_batches", type=int, default=None, help="time this many batches, scale to the epoch")
    parser.add_argument("--out", default="benchmarks/results/train-cost", help="output folder")
    add_debug_flag(parser)
    args, extra = parser.parse_known_args(argv)
    config_dict = extra_settings(parser, extra)
    config_files = args.config_files.split()
    baselines = [m for m in args.baselines.split(",") if m]
    results = measure(args.dataset, config_files, config_dict, [int(h) for h in args.hidden_sizes.split(",")],
                      [int(s) for s in args.strides.split(",")], baselines, args.max_batches)
    header, rows = table(results, baselines[0] if baselines else None)
    machine = machine_info()
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(a) for a in sys.argv)
    write_table(Path(args.out) / f"{args.dataset}.md", Path(args.out) / f"{args.dataset}.csv", header, rows,
                before=[f"# {args.dataset}: CPU cost of a training epoch", "", f"`{command}`", ""],
                after=["", f"Machine: {machine['cpu']} ({machine['device']}), torch {machine['torch']}, "
                       f"measured {time.strftime('%F')}; one thread: {torch.get_num_threads() == 1}."])
    return results


if __name__ == "__main__":
    main()
