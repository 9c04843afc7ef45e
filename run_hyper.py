"""Hyper-parameter search for DreamRec (or any RecBole model) from files, RecBole-style.

    python run_hyper.py --params_file properties/hyper/DreamRec-quick.hyper --config_files benchmarks/configs/ml-100k.yaml
"""

from recbole_dreamrec.hyper_cli import main

if __name__ == "__main__":
    main()
