"""Guidance weight w, oracles per history S and DDIM steps K of a trained DreamRec, chosen on the validation split.

All three act at inference only (x0 = (1+w) f(x_t, h, t) - w f(x_t, null, t); the mean of S generated oracles; the
number of reverse steps), so one checkpoint serves every value. For the DreamRec run of a ``compare.py`` results
folder, or for checkpoints trained alike with other seeds (their metrics averaged):

    python benchmarks/guidance_sweep.py --results benchmarks/results/ml-1m --weights 0,1,2,4,8 --samples 1,4
    python benchmarks/guidance_sweep.py --model_files saved/A.pth saved/B.pth --out DIR --steps 1,5,20

evaluates every (w, S, K) on the validation split (K: the checkpoints' own sampler unless ``--steps`` gives DDIM
step counts) (each with ``--sampling_seeds`` noise seeds; metrics averaged over
seeds and checkpoints), picks the best by the checkpoints' ``valid_metric`` (a tie keeps their own setting), and
only then evaluates two settings on the test split: their own and the chosen one. Writes ``guidance.md`` and
``guidance.csv`` into the folder, and with several checkpoints ``guidance-per-checkpoint.csv``: every one of those
evaluations per checkpoint (averaged over its sampling seeds only). Everything else (weights, data, sampler, seed)
is the checkpoints'.
"""

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole_dreamrec.checks import check_model_file  # noqa: E402
from recbole_dreamrec.errors import ConfigError, InputNotFoundError, add_debug_flag, main_guard  # noqa: E402
from recbole_dreamrec.analysis.evaluation import Checkpoint, paired_difference  # noqa: E402
from recbole_dreamrec.reporting import portable_path, write_table  # noqa: E402

METRICS = ("ndcg@10", "hit@10", "ndcg@20", "hit@20")
SETTING_KEYS = ("guidance_weight", "generation_samples", "sampler", "sampling_steps")


def setting_key(row):
    return tuple(row[k] for k in SETTING_KEYS)


def steps_label(row):
    """K for a DDIM setting, ``DDPM`` (all T steps) otherwise."""
    return str(row["sampling_steps"]) if row["sampler"] == "ddim" else "DDPM"


def numbers(text, kind):
    return [kind(v) for v in text.split(",") if v.strip()]


def checkpoint_config(model_file):
    """The RecBole ``Config`` a checkpoint was trained with (it is saved inside)."""
    return torch.load(check_model_file(model_file), map_location="cpu", weights_only=False)["config"]


def mean_over_seeds(checkpoints, settings, n_seeds, split, per_checkpoint=None, paired=None):
    """One row per setting: the metrics averaged over the checkpoints (:class:`Checkpoint`) and ``n_seeds``
    sampling seeds each (its config's ``seed``, ``seed + 1``, ...: the first is the one its training run evaluated
    with), and the evaluation seconds summed. With a list ``per_checkpoint``, one row per checkpoint and setting
    (the metrics averaged over that checkpoint's sampling seeds; ``seed``: its training seed) is appended to it.
    With a metric ``paired``, each row also holds ``per_user``: every (checkpoint, user) pair's value of it,
    averaged over the sampling seeds, in one order for every setting (for :func:`paired_difference`)."""
    per_file = []
    for checkpoint in checkpoints:
        seed = checkpoint.config["seed"]
        runs = [{**s, "sampling_seed": seed + i} for s in settings for i in range(n_seeds)]
        per_file.append(checkpoint.evaluate(runs, split=split, per_user=(paired,) if paired else ()))
    out = []
    for i, setting in enumerate(settings):
        groups = [rows[i * n_seeds:(i + 1) * n_seeds] for rows in per_file]  # one per checkpoint
        group = [row for rows in groups for row in rows]
        out.append({**setting, "seconds": sum(r["seconds"] for r in group), "users": group[0]["users"],
                    **mean_metrics(group)})
        if paired:  # [n_checkpoints * n_users]
            out[-1]["per_user"] = np.concatenate([np.mean([r["per_user"][paired] for r in rows], axis=0)
                                                  for rows in groups])
        if per_checkpoint is not None:
            for checkpoint, rows in zip(checkpoints, groups):
                per_checkpoint.append({"split": split, "seed": checkpoint.config["seed"], **setting,
                                       **mean_metrics(rows)})
    return out


def mean_metrics(rows):
    """The mean of each of :data:`METRICS` over ``rows``."""
    return {m: sum(r[m] for r in rows) / len(rows) for m in METRICS}


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(description="Choose DreamRec's guidance weight, oracles per history and DDIM "
                                     "steps on valid.")
    parser.add_argument("--results", help="a compare.py results folder with a finished DreamRec run")
    parser.add_argument("--model", default="DreamRec", help="the run's name in <results>/runs")
    parser.add_argument("--model_files", nargs="+", help="instead of --results: DreamRec checkpoints trained alike "
                        "(e.g. with two seeds); their metrics are averaged")
    parser.add_argument("--out", help="where guidance.md and guidance.csv go (default: --results)")
    parser.add_argument("--weights", default="0,0.5,1,2,4,8", help="guidance weights w, comma separated")
    parser.add_argument("--samples", default="1,4", help="oracles per history S, comma separated")
    parser.add_argument("--steps", default="", help="DDIM steps K, comma separated (default: only the checkpoints' "
                        "own sampler and K)")
    parser.add_argument("--sampling_seeds", type=int, default=2,
                        help="noise seeds per setting and checkpoint (its seed, seed + 1, ...)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if bool(args.results) == bool(args.model_files):
        parser.error("give either --results or --model_files")
    if args.model_files:
        if not args.out:
            parser.error("--model_files needs --out")
        model_files = args.model_files
    else:
        path = Path(args.results) / "runs" / f"{args.model}.json"
        if not path.is_file():
            raise InputNotFoundError(f"no finished {args.model} run in {path.parent}: run benchmarks/compare.py first")
        model_files = [json.loads(path.read_text())["model_file"]]
    out = Path(args.out or args.results)
    configs = [checkpoint_config(f) for f in model_files]
    config = configs[0]
    keys = ("dataset", "valid_metric", "guidance_weight", "generation_samples", "uncond_prob", "sampler",
            "sampling_steps", "seed")
    differ = [k for k in keys[:-1] if any(c[k] != config[k] for c in configs[1:])]
    if differ:
        raise ConfigError(f"the checkpoints differ in {differ}: pass checkpoints trained alike (other seeds)")
    if args.sampling_seeds < 1:
        parser.error("--sampling_seeds must be >= 1")
    metric = str(config["valid_metric"]).lower()
    if metric not in METRICS:
        raise ConfigError(f"the checkpoints were selected on {metric}; this table has {list(METRICS)}")
    own = {"guidance_weight": float(config["guidance_weight"]), "generation_samples": int(config["generation_samples"]),
           "sampler": config["sampler"], "sampling_steps": int(config["sampling_steps"])}
    steps = [("ddim", k) for k in numbers(args.steps, int)] or [(own["sampler"], own["sampling_steps"])]
    if any(k < 1 or k > config["timesteps"] for _, k in steps):
        parser.error(f"--steps must lie in [1, {config['timesteps']}] (the checkpoints' timesteps)")
    grid = [{"guidance_weight": w, "generation_samples": s, "sampler": sampler, "sampling_steps": k}
            for sampler, k in steps for s in numbers(args.samples, int) for w in numbers(args.weights, float)]
    if own not in grid:
        grid.append(own)

    checkpoints = [Checkpoint(f) for f in model_files]  # each loaded once, for both splits
    per_checkpoint = []
    valid = mean_over_seeds(checkpoints, grid, args.sampling_seeds, "valid", per_checkpoint, paired=metric)
    own_users = next(row["per_user"] for row in valid if setting_key(row) == setting_key(own))
    # the best valid score; a tie keeps the checkpoints' own setting
    best = max(valid, key=lambda row: (row[metric], all(row[k] == own[k] for k in own)))
    chosen = {k: best[k] for k in own}
    test = mean_over_seeds(checkpoints, [own] + ([chosen] if chosen != own else []), args.sampling_seeds,
                           "test", per_checkpoint)
    test_of = {setting_key(r): r for r in test}

    header = ["w", "S", "K", *(f"valid {m}" for m in METRICS), f"valid {metric} − own (paired SE)", "valid s",
              *(f"test {m}" for m in METRICS)]
    table = []
    for row in valid:
        key = setting_key(row)
        mark = " (own)" if key == setting_key(own) else ""
        mark += " (chosen on valid)" if key == setting_key(chosen) else ""
        tested = test_of.get(key)
        gain, se = paired_difference(row["per_user"], own_users)
        table.append([f"{row['guidance_weight']:g}{mark}", row["generation_samples"], steps_label(row),
                      *(f"{row[m]:.4f}" for m in METRICS), f"{gain:+.4f} ({se:.4f})", f"{row['seconds']:.1f}",
                      *((f"{tested[m]:.4f}" for m in METRICS) if tested else [""] * len(METRICS))])
    hit = best["hit@10"]
    users = best["users"]
    # the page names checkpoints as the run records do (~/..., or relative to the checkout), not by this machine's paths
    trained = ", ".join(f"`{portable_path(f)}` (seed {c['seed']})" for f, c in zip(model_files, configs))
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python benchmarks/guidance_sweep.py", *(portable_path(arg) for arg in given)])
    before = [
        f"# {config['dataset']}: DreamRec's guidance weight w, oracles per history S and steps K, chosen on valid "
        f"{metric}",
        "",
        f"Checkpoints {trained}, trained with w = {own['guidance_weight']:g}, S = {own['generation_samples']}, "
        f"uncond_prob {config['uncond_prob']}; sampler {config['sampler']}"
        + (f" K = {config['sampling_steps']}" if config["sampler"] == "ddim" else "")
        + f"; metrics averaged over the checkpoints and {args.sampling_seeds} sampling seed(s) each (its seed, seed + 1, "
        "...). Test metrics only "
        "for the checkpoints' own setting and the one chosen on valid.",
        "",
    ]
    after = [
        "",
        f"One binomial standard error of HR@10 near {hit:.3f} over {users} users (one checkpoint): "
        f"{math.sqrt(hit * (1 - hit) / users):.4f}; gaps under about two are ties. The paired column compares each "
        f"setting with the checkpoints' own on the same users and checkpoints (the standard error of the mean "
        f"per-user difference, smaller than the binomial one when the two rank most users alike).",
        "",
        f"Command: `{command}`",
    ]
    print(write_table(out / "guidance.md", out / "guidance.csv", header, table, before=before, after=after),
          end="")
    if len(checkpoints) > 1:  # the table averages them: each checkpoint's own numbers beside it
        write_per_checkpoint_csv(out / "guidance-per-checkpoint.csv", per_checkpoint)


def write_per_checkpoint_csv(path, rows):
    """``rows`` of :func:`mean_over_seeds` (``per_checkpoint``) as CSV: split, training seed, w, S, K, metrics."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "seed", "w", "S", "K", *METRICS])
        for row in rows:
            writer.writerow([row["split"], row["seed"], f"{row['guidance_weight']:g}", row["generation_samples"],
                             steps_label(row), *(f"{row[m]:.4f}" for m in METRICS)])


if __name__ == "__main__":
    main()
