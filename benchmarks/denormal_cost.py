"""Denormal floats in DreamRec's training: CPU seconds of training batches continued from a checkpoint, with
``torch.set_flush_denormal`` off and on, alternating.

    OMP_NUM_THREADS=1 python benchmarks/denormal_cost.py ~/.recbole_dreamrec/saved/<run>.last.pth

Rebuilds the checkpoint's model, data and config with the plugin's ``load_data_and_model`` (run from where the run
ran: its ``data_path`` is read as saved), loads its Adam state, takes the first ``--batches`` training batches and
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

from recbole_dreamrec.data import train_loader  # noqa: E402
from recbole_dreamrec.quick_start import load_data_and_model  # noqa: E402
from recbole_dreamrec.reporting import local_path  # noqa: E402


def denormal_count(tensors):
    """How many values of ``tensors`` are denormal (non-zero and below float32's smallest normal)."""
    tiny = torch.finfo(torch.float32).tiny
    return sum(int(((t != 0) & (t.abs() < tiny)).sum()) for t in tensors if torch.is_tensor(t) and t.is_floating_point())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_file")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="passes with flushing off, then on, repeated")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model_file = local_path(args.model_file)
    config, model, _, train_rows, _, _ = load_data_and_model(model_file, device="cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    optimizer.load_state_dict(torch.load(model_file, map_location="cpu", weights_only=False)["optimizer"])
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
