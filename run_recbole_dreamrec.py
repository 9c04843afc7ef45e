"""Train and evaluate DreamRec (or any RecBole model) RecBole-style.

    python run_recbole_dreamrec.py                                   # DreamRec on ml-100k (offline)
    python run_recbole_dreamrec.py --model SASRec --dataset ml-1m --data_path=../shared/datasets
    python run_recbole_dreamrec.py --config_files "a.yaml b.yaml" --guidance_weight=4 --sampler=ddim
"""

from recbole_dreamrec.cli import main

if __name__ == "__main__":
    main()
