"""Convert a DreamRec paper data folder (train_data.df, val_data.df, test_data.df, data_statis.df) to RecBole
benchmark files plus a config that loads them:

    python benchmarks/convert_dreamrec_data.py --source DreamRec/data/yc --out dataset --name yc
    python run_recbole_dreamrec.py --dataset yc --config_files dataset/yc.yaml
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole_dreamrec.convert import convert_dreamrec_data  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="folder with the paper's .df pickles")
    parser.add_argument("--out", required=True, help="output data_path (the files go to OUT/NAME/)")
    parser.add_argument("--name", required=True, help="dataset name")
    args = parser.parse_args()
    print(json.dumps(convert_dreamrec_data(args.source, args.out, args.name), indent=1))
