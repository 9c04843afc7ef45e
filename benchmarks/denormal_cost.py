"""Denormal floats in DreamRec's training: CPU seconds of training batches continued from a checkpoint, with
``torch.set_flush_denormal`` off and on, alternating.

    OMP_NUM_THREADS=1 python benchmarks/denormal_cost.py ~/.recbole_dreamrec/saved/<run>.last.pth \
        --config_files benchmarks/configs/ml-1m.yaml --data_path=../shared/datasets

Rebuilds the checkpoint's model under its own saved config (``--key=value`` settings override it, e.g. a
``data_path`` for this machine), loads its weights and Adam state, takes the first ``--batches`` training batches and
times ``--rounds`` alternating passes over them (zero the gradients, ``calculate_loss``, backward, Adam step) with
denormal flushing off, then on, counting this process's CPU seconds. Prints the count of denormal values in the
weights and the Adam state, and each pass's CPU seconds a batch. Flushing is process-wide; nothing is written.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole.data import data_preparation  # noqa: E402

from recbole_dreamrec.checks import load_dataset  # noqa: E402
from recbole_dreamrec.cli import extra_settings  # noqa: E402
from recbole_dreamrec.config import Config  # noqa: E402
from recbole_dreamrec.data import train_loader  # noqa: E402
from recbole_dreamrec.reporting import local_path  # noqa: E402
from recbole_dreamrec.utils import get_model  # noqa: E402


def denormal_count(tensors):
    """How many values of ``tensors`` are denormal (non-zero and below float32's smallest normal)."""
    tiny = torch.finfo(torch.float32).tiny
    return sum(int(((t != 0) & (t.abs() < tiny)).sum()) for t in tensors if torch.is_tensor(t) and t.is_floating_point())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_file")
    parser.add_argument("--config_files", default="", help="setting files, space separated")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="passes with flushing off, then on, repeated")
    args, extra = parser.parse_known_args(argv)
    torch.set_num_threads(1)
    checkpoint = torch.load(local_path(args.model_file), map_location="cpu", weights_only=False)
    saved = checkpoint["config"]
    config = Config(model=saved["model"], dataset=saved["dataset"], config_file_list=args.config_files.split() or None,
                    config_dict={**{k: saved[k] for k in ("hidden_size", "inner_size", "hidden_dropout_prob",
                                                            "attn_dropout_prob", "train_batch_size", "learning_rate",
                                                            "seed") if k in saved},
                                 **extra_settings(parser, extra)})
    dataset = load_dataset(config)
    train_rows = data_preparation(config, dataset)[0]
    model = get_model(config["model"])(config, train_rows._dataset)
    model.load_state_dict(checkpoint["state_dict"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    batches = []
    for batch in train_loader(config, train_rows):
        batches.append(batch)
        if len(batches) == args.batches:
            break
    print(f"denormal values: weights {denormal_count(model.parameters())} of "
          f"{sum(p.numel() for p in model.parameters())}, Adam state "
          f"{denormal_count(v for state in optimizer.state.values() for v in state.values())}")
    model.train()
    for _ in range(args.rounds):
        for flush in (False, True):
            torch.set_flush_denormal(flush)
            start = time.process_time()
            for batch in batches:
                optimizer.zero_grad()
                model.calculate_loss(batch).backward()
                optimizer.step()
            print(f"flush_denormal {flush}: {(time.process_time() - start) / len(batches):.3f} CPU s a batch",
                  flush=True)
    torch.set_flush_denormal(False)


if __name__ == "__main__":
    main()
