"""Convert a DreamRec paper data folder (train_data.df, val_data.df, test_data.df, data_statis.df, exactly as the
authors released them) to RecBole benchmark files plus a config that loads them:

    python benchmarks/convert_dreamrec_data.py --source ../shared/datasets/dreamrec-zhihu --out dataset --name zhihu
    python run_recbole_dreamrec.py --dataset zhihu --config_files dataset/zhihu.yaml

Empty histories (a session's first event) are kept with a start token by default (the paper evaluates every test
row); --empty_history drop removes them. The rows read, written and lost per split are printed and saved in
OUT/NAME.stats.json.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole_dreamrec.convert import EMPTY_HISTORY, convert_dreamrec_data, summary  # noqa: E402
from recbole_dreamrec.errors import add_debug_flag, main_guard  # noqa: E402


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="folder with the paper's .df pickles")
    parser.add_argument("--out", required=True, help="output data_path (the files go to OUT/NAME/)")
    parser.add_argument("--name", required=True, help="dataset name")
    parser.add_argument("--empty_history", choices=EMPTY_HISTORY, default="start",
                        help="rows with an empty history: 'start' keeps them with a start token (default), 'drop'")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    stats = convert_dreamrec_data(args.source, args.out, args.name, args.empty_history)
    print(summary(stats))
    print(f"config: {stats['paths']['config']}  (python run_recbole_dreamrec.py --dataset {args.name} "
          f"--config_files {stats['paths']['config']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
