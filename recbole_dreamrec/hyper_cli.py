"""Command line of ``run_hyper.py``."""

import argparse
import logging

from recbole_dreamrec.errors import add_debug_flag, main_guard
from recbole_dreamrec.hyper import ALGOS, tune
from recbole_dreamrec.utils import properties_path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Hyper-parameter search with RecBole's HyperTuning.")
    parser.add_argument("--model", "-m", default="DreamRec", help="model name (plugin or RecBole)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", default=None, help="fixed settings: config files, space separated")
    parser.add_argument(
        "--params_file",
        default=str(properties_path("hyper", "DreamRec-quick.hyper")),
        help="search space in RecBole's format (default: the plugin's quick DreamRec space)",
    )
    parser.add_argument("--algo", default="exhaustive", choices=ALGOS, help="search algorithm")
    parser.add_argument("--max_evals", type=int, default=100, help="trials for random/bayes (exhaustive: all)")
    parser.add_argument("--early_stop", type=int, default=10, help="stop after this many trials without progress")
    parser.add_argument("--output_file", default=None, help="RecBole's result file; reports are written beside it")
    add_debug_flag(parser)
    return parser.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # trials log errors only (RecBole's tuning does the same)
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    ranked, paths = tune(
        args.model,
        args.dataset,
        args.params_file,
        config_file_list=config_file_list,
        algo=args.algo,
        max_evals=args.max_evals,
        early_stop=args.early_stop,
        output_file=args.output_file,
    )
    print(paths["markdown"].read_text())
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return ranked, paths
