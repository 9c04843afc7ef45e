"""Speed benchmark: training cost and evaluation cost/quality of DreamRec's samplers next to SASRec.

Uses the checkpoints of a finished comparison (``benchmarks/compare.py``) and measures everything else itself:

    python benchmarks/compare.py --dataset ml-100k --models DreamRec,SASRec --config_files benchmarks/configs/ml-100k.yaml
    python benchmarks/speed.py --results benchmarks/results/ml-100k

In this one process it times ``--train_epochs`` training epochs of DreamRec and of SASRec (same shared setting as
the comparison, so the same encoder size), then evaluates every checkpoint on the same test data: SASRec, DreamRec
with ``ddpm`` (all T steps) and ``ddim`` at each K of ``--steps``. Writes ``speed.md``, ``speed.csv`` and ``speed.png`` into the results
folder. Run it with nothing else busy on the machine: timings are wall-clock.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole_dreamrec.reporting import machine_info  # noqa: E402
from recbole_dreamrec.errors import InputNotFoundError, add_debug_flag, main_guard  # noqa: E402
from recbole_dreamrec.analysis.evaluation import evaluate_checkpoint, sampler_settings  # noqa: E402
from recbole_dreamrec.quick_start import run_recbole_dreamrec  # noqa: E402
from recbole_dreamrec.reporting import new_figure, write_table  # noqa: E402


def train_seconds_per_epoch(run, epochs):
    """Mean seconds of ``epochs`` training epochs of the run's model, under the run's config files."""
    settings = {"epochs": epochs, "eval_step": epochs + 1, "show_progress": False}  # no validation in between
    result = run_recbole_dreamrec(run["model"], run["dataset"], run["config_files"], settings, saved=False)
    return result["train_seconds_per_epoch"]


def read_run(results, model):
    """The record ``<results>/runs/<model>.json`` of a finished comparison run."""
    path = results / "runs" / f"{model}.json"
    if not path.is_file():
        raise InputNotFoundError(
            f"{path} not found: speed.py needs finished DreamRec and SASRec runs of benchmarks/compare.py in {results}"
        )
    return json.loads(path.read_text())


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(description="DreamRec sampler speed/quality next to SASRec.")
    parser.add_argument("--results", required=True, help="a compare.py results folder with DreamRec and SASRec runs")
    parser.add_argument("--steps", default="5,10,20,50,100", help="DDIM step counts K")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    parser.add_argument("--train_epochs", type=int, default=1, help="training epochs timed per model")
    parser.add_argument("--noise_seeds", type=int, default=5, help="sampling seeds for the noise of ddpm and K=20")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    results = Path(args.results)
    runs = {m: read_run(results, m) for m in ("DreamRec", "SASRec")}
    for run in runs.values():
        run["train_seconds_per_epoch"] = train_seconds_per_epoch(run, args.train_epochs)

    rows = []
    for setting_row in evaluate_checkpoint(runs["SASRec"]["model_file"]):
        rows.append({"method": "SASRec", "train s/epoch": runs["SASRec"]["train_seconds_per_epoch"], **setting_row})
    timesteps = runs["DreamRec"]["config"]["timesteps"]
    steps = [int(k) for k in args.steps.split(",")]
    for row in evaluate_checkpoint(runs["DreamRec"]["model_file"], sampler_settings(timesteps, steps, args.eta)):
        label = f"DreamRec ddpm T={timesteps}" if row["sampler"] == "ddpm" else f"DreamRec ddim K={row['sampling_steps']}"
        rows.append({"method": label, "train s/epoch": runs["DreamRec"]["train_seconds_per_epoch"], **row})

    after = sampling_noise(runs["DreamRec"]["model_file"], timesteps, args.noise_seeds, args.eta)
    device = machine_info()["device"]
    header = ["method", "train s/epoch", "eval s", "users/s", "test ndcg@10", "test hit@10"]
    table = [
        [r["method"], f"{r['train s/epoch']:.1f}", f"{r['seconds']:.2f}", f"{r['users'] / r['seconds']:.0f}",
         f"{r['ndcg@10']:.4f}", f"{r['hit@10']:.4f}"]
        for r in rows
    ]
    before = [f"# Speed on {runs['DreamRec']['dataset']} ({device})", ""]
    text = write_table(results / "speed.md", results / "speed.csv", header, table, before=before, after=after)
    plot(rows, results / "speed.png", device)
    print(text, end="")


def sampling_noise(model_file, timesteps, seeds, eta):
    """Lines giving the mean and standard deviation of test NDCG@10 over ``seeds`` sampler seeds, for ``ddpm`` and
    ``ddim`` K = 20 on the same checkpoint: how far apart two samplers can be by chance alone."""
    if seeds < 2:
        return []
    ddpm, ddim = sampler_settings(timesteps, [min(20, timesteps)], eta)
    settings = [{**setting, "sampling_seed": seed} for setting in (ddpm, ddim) for seed in range(seeds)]
    rows = evaluate_checkpoint(model_file, settings)
    lines = ["", f"Sampling noise (same checkpoint, sampler seeds 0..{seeds - 1}): test NDCG@10"]
    for name, part in (("ddpm", rows[:seeds]), (f"ddim K={ddim['sampling_steps']}", rows[seeds:])):
        values = torch.tensor([r["ndcg@10"] for r in part], dtype=torch.float64)
        lines.append(f"- {name}: mean {values.mean():.4f}, std {values.std():.4f}, range {values.min():.4f}-{values.max():.4f}")
    return lines


def plot(rows, path, device):
    ddim = [r for r in rows if r.get("sampler") == "ddim"]
    ddpm = next(r for r in rows if r.get("sampler") == "ddpm")
    sasrec = next(r for r in rows if r["method"] == "SASRec")
    fig = new_figure(figsize=(9, 3.5))
    left, right = fig.subplots(1, 2)
    ks = [r["sampling_steps"] for r in ddim]
    left.plot(ks, [r["ndcg@10"] for r in ddim], "o-", label="DreamRec ddim")
    left.axhline(ddpm["ndcg@10"], color="C1", ls="--", label=f"DreamRec ddpm (T={ddpm['sampling_steps']})")
    left.axhline(sasrec["ndcg@10"], color="C2", ls=":", label="SASRec")
    left.set(xscale="log", xlabel="DDIM steps K", ylabel="test NDCG@10")
    right.plot(ks, [r["seconds"] for r in ddim], "o-", label="DreamRec ddim")
    right.axhline(ddpm["seconds"], color="C1", ls="--", label="DreamRec ddpm")
    right.axhline(sasrec["seconds"], color="C2", ls=":", label="SASRec")
    right.set(xscale="log", yscale="log", xlabel="DDIM steps K", ylabel="evaluation seconds")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.suptitle(f"Full-sort test evaluation, {device}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
