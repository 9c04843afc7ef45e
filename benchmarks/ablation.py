"""Ablation: variants of DreamRec (or any model) under one shared setting, each with several seeds.

    python benchmarks/ablation.py --dataset zhihu \
        --config_files "dataset/zhihu.yaml benchmarks/configs/zhihu.yaml" \
        --variants benchmarks/configs/ablation/zhihu.yaml --seeds 2020,2021 \
        --out benchmarks/results/ablation/zhihu --metrics hit@20,ndcg@20,hit@10,ndcg@10 --test_rows 7911

Runs already in ``<out>/runs/`` are skipped (an interrupted ablation resumes); ``--only a,b`` runs some variants.
Any further ``--key=value`` applies to every run. ``--readouts VARIANT`` evaluates that variant's checkpoints under
several readouts (DDPM, DDIM K = 20, 5, 1, the mean of 4 generations) on valid and test, without training.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole_dreamrec.analysis.ablation import evaluate_readouts, load_variants, run_ablation  # noqa: E402
from recbole_dreamrec.cli import extra_settings  # noqa: E402
from recbole_dreamrec.errors import add_debug_flag, main_guard  # noqa: E402


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", "-d", default=None)
    parser.add_argument("--config_files", default="", help="shared setting, space separated")
    parser.add_argument("--variants", default=None, help="YAML file: variant name -> settings")
    parser.add_argument("--only", default="", help="comma separated variants to run (default: all)")
    parser.add_argument("--seeds", default="2020,2021", help="comma separated seeds")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--metrics", default="hit@20,ndcg@20,hit@10,ndcg@10", help="test metrics for the tables")
    parser.add_argument("--test_rows", type=int, default=None, help="number of test rows (for the standard error)")
    parser.add_argument("--readouts", default="", help="a finished variant: evaluate its checkpoints under each "
                        "readout (sampler, steps, averaging) instead of training")
    add_debug_flag(parser)
    args, extra = parser.parse_known_args(argv)
    metrics = [m for m in args.metrics.split(",") if m]
    if args.readouts:
        return evaluate_readouts(args.out, args.readouts, metrics)
    if not args.variants or not args.dataset:
        parser.error("--dataset and --variants are required (unless --readouts)")
    variants = load_variants(args.variants, [v for v in args.only.split(",") if v])
    seeds = [int(s) for s in args.seeds.split(",") if s]
    return run_ablation(variants, seeds, args.dataset, args.config_files.split(), args.out, metrics,
                        config_dict=extra_settings(parser, extra), test_rows=args.test_rows)


if __name__ == "__main__":
    main()
