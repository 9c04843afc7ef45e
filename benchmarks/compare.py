"""Side-by-side comparison of DreamRec and RecBole baselines under one shared setting.

    python benchmarks/compare.py --dataset ml-100k --models DreamRec,SASRec,GRU4Rec,Pop \
        --config_files benchmarks/configs/ml-100k.yaml

Per-model overrides live in ``<config dir>/models/<Model>.yaml`` (every setting), then
``<config dir>/models/<setting>/<Model>.yaml`` (that setting file only). Results: ``benchmarks/results/<dataset>/``.
Re-running skips finished models and continues an interrupted one from its last checkpoint (same command, same
settings: ``runs/<Model>.progress.json`` says where it stopped); a finished model whose settings that act after training
changed (DreamRec's ``refit_last_step``, ``refit_features``, ``refit_code_size``, ``refit_last_item``) is finished
again from its best checkpoint, not retrained; ``--redo SASRec`` (or ``--redo all``) runs
finished models again from the start (their records move to ``runs/replaced/``; an interrupted redo continues like
any unfinished run). To discard an unfinished run instead, delete its progress file. An unfinished run that cannot
continue (other settings, a redo, its checkpoint gone) starts afresh; its curve moves to ``runs/replaced/`` first.
A progress line after every validation gives the epoch, the elapsed time and the time left.
Any further ``--key=value`` applies to every model (e.g. ``--epochs=1`` for a smoke run, ``--data_path=DIR``).
Checkpoints go to ``~/.recbole_dreamrec/saved`` (``$RECBOLE_DREAMREC_CHECKPOINTS`` or ``--checkpoint_dir=DIR``
choose another folder), outside the checkout: a run continues in a fresh checkout of the project on the same
machine (the progress files, which the checkout keeps, point there).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole_dreamrec.analysis.benchmark import compare  # noqa: E402
from recbole_dreamrec.analysis.tables import TABLE_METRICS  # noqa: E402
from recbole_dreamrec.cli import extra_settings  # noqa: E402
from recbole_dreamrec.errors import add_debug_flag, main_guard  # noqa: E402


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Any further --key=value is a RecBole or DreamRec setting for every model (e.g. --epochs=1, "
               "--data_path=DIR, --checkpoint_dir=DIR). Re-running the same command skips finished models and "
               "continues an unfinished one from its last checkpoint.")
    parser.add_argument("--dataset", "-d", default="ml-100k",
                        help="dataset name: ml-100k (bundled with RecBole), ml-1m, any folder DIR/<name>/ with "
                             "--data_path=DIR (default ml-100k)")
    parser.add_argument("--models", default="DreamRec,SASRec,GRU4Rec,BERT4Rec,NARM,STAMP,Caser,Pop",
                        help="comma-separated model names: DreamRec and any RecBole model, as RecBole spells them "
                             "(default %(default)s)")
    parser.add_argument("--config_files", default=None, help="shared setting, space separated")
    parser.add_argument("--out", default=None, help="output folder (default benchmarks/results/<dataset>)")
    parser.add_argument("--redo", default="", help="comma separated models to run again, or 'all'")
    parser.add_argument("--metrics", default=",".join(TABLE_METRICS), help="test metrics in the tables, comma separated")
    add_debug_flag(parser)
    args, extra = parser.parse_known_args(argv)
    config_dict = extra_settings(parser, extra)
    out = args.out or str(Path(__file__).resolve().parent / "results" / args.dataset)
    config_files = args.config_files.split() if args.config_files else []
    models = [m for m in args.models.split(",") if m]
    redo = [m for m in args.redo.split(",") if m]
    metrics = [m for m in args.metrics.split(",") if m]
    return compare(models, args.dataset, config_files, out, config_dict=config_dict, redo=redo, metrics=metrics)


if __name__ == "__main__":
    main()
