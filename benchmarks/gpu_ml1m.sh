#!/usr/bin/env bash
# ML-1M in RecBole's reference training budget (batch 4096, up to 500 epochs, early stopping patience 10 on valid
# NDCG@10) on a GPU machine: one command, resumable (finished models are skipped when run again, an interrupted one
# continues from its last checkpoint).
#
#   bash benchmarks/gpu_ml1m.sh [DATA_PATH] [OUT]      # DATA_PATH holds ml-1m/ml-1m.inter (default ../shared/datasets)
#
# Data, split and evaluator: benchmarks/configs/ml-1m.yaml (ratings >= 3, 10-core, leave-one-out, time order, full
# ranking, MAX_ITEM_LIST_LENGTH 50), the setting of shared/reference/recbole-ml-1m-seq.md. Learning rates are each
# model's defaults (RecBole's reference runs tuned them; say so beside the table). The CPU table
# (benchmarks/results/ml-1m) differs only in the batch (256). Not run in this project yet: no GPU was available to
# the sessions so far.
set -euo pipefail
cd "$(dirname "$0")/.."
data_path="${1:-../shared/datasets}"
out="${2:-benchmarks/results/ml-1m-gpu}"
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_ml1m.sh: no CUDA device; this script is for a GPU machine (on the CPU: see benchmarks/results/ml-1m/README.md)')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python benchmarks/compare.py --dataset ml-1m \
    --models Pop,DreamRec,GRU4Rec,NARM,SASRec,STAMP,Caser,BERT4Rec \
    --config_files benchmarks/configs/ml-1m.yaml --out "$out" \
    --data_path="$data_path" --epochs=500 --stopping_step=10 --train_batch_size=4096 --eval_batch_size=4096 \
    --gpu_id=0 --use_gpu=True
