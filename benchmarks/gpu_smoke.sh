#!/usr/bin/env bash
# The plugin's code paths on a CUDA machine, one line per step, in a few minutes (ml-100k, bundled with RecBole):
# train DreamRec for two epochs, resume for a third, evaluate the checkpoint again, inspect two users' oracles, draw
# the embedding map, then reload the GPU-trained checkpoint on the CPU and compare its test metrics.
#
#   bash benchmarks/gpu_smoke.sh [WORK_DIR]      # default: a fresh temporary folder
#
# Exit status 0 when every step passes. Needs CUDA (a machine without it is refused on the first line) and the
# project installed (pip install -e ".[test]"). GPU_SMOKE_CPU=1 runs the same steps on the CPU (a dry run of the
# script itself, as done here). Not run on a GPU yet: no GPU has been available to this project so far.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
cd "$work"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
failed=0

step() {  # step NAME COMMAND...: run it quietly (output in WORK_DIR/NAME.log), one line with its result
    local name="$1"
    shift
    local start=$SECONDS
    if "$@" >"$name.log" 2>&1; then
        echo "PASS $name ($((SECONDS - start)) s): $(tail -n 1 "$name.log")"
    else
        echo "FAIL $name ($((SECONDS - start)) s): $(tail -n 1 "$name.log") [log: $work/$name.log]"
        failed=1
    fi
}

settings="{'epochs': 2, 'checkpoint_dir': 'saved', 'show_progress': False, 'gpu_id': '0', 'use_gpu': True}"
device=cuda
if [ "${GPU_SMOKE_CPU:-0}" = 1 ]; then
    settings="{'epochs': 2, 'checkpoint_dir': 'saved', 'show_progress': False, 'use_gpu': False}"
    device=cpu
fi

step cuda python -c "
import sys, torch
if '$device' == 'cpu':
    print('GPU_SMOKE_CPU=1: a dry run on the CPU')
elif not torch.cuda.is_available():
    sys.exit('no CUDA device: gpu_smoke.sh is for a GPU machine (GPU_SMOKE_CPU=1 for a dry run on the CPU)')
else:
    print(torch.cuda.get_device_name(0), 'torch', torch.__version__)"
[ $failed -eq 0 ] || exit 1

step train python -c "
import json, recbole_dreamrec as r
result = r.run_recbole_dreamrec('DreamRec', 'ml-100k', config_dict=$settings)
assert str(result['config']['device']).startswith('$device'), result['config']['device']
json.dump({'model_file': result['model_file'], 'last_model_file': result['last_model_file'],
           'test': {k: float(v) for k, v in result['test_result'].items()}}, open('train.json', 'w'))
print('device', result['config']['device'], 'test ndcg@10', round(float(result['test_result']['ndcg@10']), 4))"

step resume python -c "
import json, recbole_dreamrec as r
run = json.load(open('train.json'))
result = r.run_recbole_dreamrec('DreamRec', 'ml-100k', config_dict={**$settings, 'epochs': 3,
                                                                      'resume_file': run['last_model_file']})
assert result['epochs_trained'] == 1, result['epochs_trained']  # epochs 0 and 1 came from the checkpoint
json.dump({'model_file': result['model_file'], 'test': {k: float(v) for k, v in result['test_result'].items()}},
          open('resume.json', 'w'))  # the best checkpoint of the three epochs
print('trained epoch 3 only; test ndcg@10', round(float(result['test_result']['ndcg@10']), 4))"

step evaluate python -c "
import json
from recbole_dreamrec.analysis.evaluation import evaluate_checkpoint
run = json.load(open('resume.json'))
(row,) = evaluate_checkpoint(run['model_file'])
diff = max(abs(row[k] - v) for k, v in run['test'].items())
assert diff < 1e-9, (diff, row)
print('the best checkpoint evaluated again gives its run\'s test metrics; eval seconds', round(row['seconds'], 2))"

step inspect python "$repo/inspect_dreamrec.py" oracle --model_file "$(python -c "import json; print(json.load(open('train.json'))['model_file'])")" --users 1,2 --samples 3

step map python "$repo/inspect_dreamrec.py" map --model_files "$(python -c "import json; print(json.load(open('train.json'))['model_file'])")" --method pca --users 50 --out map.png

step cpu_reload python -c "
import json, torch
from recbole_dreamrec import load_data_and_model
from recbole_dreamrec.trainer import instrument
from recbole_dreamrec.utils import get_trainer
run = json.load(open('resume.json'))
config, model, _, _, _, test_data = load_data_and_model(run['model_file'], device='cpu')
assert next(model.parameters()).device.type == 'cpu'
result = instrument(get_trainer(config['MODEL_TYPE'], config['model']))(config, model).evaluate(test_data, load_best_model=False)
diff = {k: abs(float(result[k]) - v) for k, v in run['test'].items()}
assert max(diff.values()) <= 0.002, diff  # float sums in another order on another device: the last digits may move
print('GPU-trained checkpoint on the CPU: largest test metric difference', round(max(diff.values()), 4))"

if [ $failed -eq 0 ]; then echo "gpu_smoke: every step passed (logs in $work)"; else echo "gpu_smoke: a step failed (logs in $work)"; fi
exit $failed
