"""Command line of ``run_recbole_dreamrec.py`` (and the ``recbole-dreamrec`` console script)."""

import argparse

from recbole_dreamrec.errors import add_debug_flag, main_guard
from recbole_dreamrec.quick_start import run


def parse_args(argv=None):
    """RecBole-style arguments: ``--model``, ``--dataset``, ``--config_files`` and any ``--key=value``.

    Returns:
        tuple: the parsed namespace and a ``config_dict`` of the extra ``--key=value`` settings (values are strings;
        RecBole's ``Config`` converts them as it does for its own command line).
    """
    parser = argparse.ArgumentParser(
        description="Train and evaluate DreamRec or any RecBole model (RecBole's data, splits and evaluators).",
        epilog="Any setting of RecBole or of the model can be given as --key=value (e.g. --epochs=50, "
               "--guidance_weight=4, --hidden_size=256, --data_path=DIR); every DreamRec setting is listed with its "
               "default in properties/model/DreamRec.yaml.")
    parser.add_argument("--model", "-m", type=str, default="DreamRec", help="model name (plugin or RecBole)")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="config files, space separated")
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine (data-parallel)")
    parser.add_argument("--world_size", type=int, default=-1, help="processes on all machines (default: nproc)")
    parser.add_argument("--ip", type=str, default="localhost", help="address of the machine with rank 0")
    parser.add_argument("--port", type=str, default="5678", help="a free port on that machine")
    parser.add_argument("--group_offset", type=int, default=0, help="global rank of this machine's first process")
    add_debug_flag(parser)
    args, extra = parser.parse_known_args(argv)
    return args, extra_settings(parser, extra)


def extra_settings(parser, extra):
    """``--key=value`` arguments as a ``config_dict`` (string values); anything else is a usage error."""
    config_dict = {}
    for arg in extra:
        key, sep, value = arg[2:].partition("=")
        if not arg.startswith("--") or not sep or not key:
            parser.error(f"unrecognized argument {arg!r}: extra settings are written --key=value")
        config_dict[key] = value
    return config_dict


@main_guard
def main(argv=None):
    args, config_dict = parse_args(argv)
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    return run(
        model=args.model,
        dataset=args.dataset,
        config_file_list=config_file_list,
        config_dict=config_dict,
        nproc=args.nproc,
        world_size=args.world_size,
        ip=args.ip,
        port=args.port,
        group_offset=args.group_offset,
    )
