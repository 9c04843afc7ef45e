"""Apply ``refit_last_step`` to a DreamRec checkpoint trained without it, and save the result as a new checkpoint.

    OMP_NUM_THREADS=1 python benchmarks/refit_checkpoint.py ~/.recbole_dreamrec/saved/<run>.pth --out <run>-refit.pth

The refit follows training and changes nothing in it, so a run trained without it can be finished afterwards: this
rebuilds the checkpoint's model, data and config (``load_data_and_model``; run from where the run ran, its
``data_path`` is read as saved), refits the last diffusion step over its training targets as a run with
``refit_last_step: True`` does after training (:meth:`DreamRec.finish_training`, noise from the config's seed), and
saves the checkpoint with ``refit_last_step: True`` in its config (``--refit_features F``: the read also takes F random
features of h, saved with it; ``--refit_code_size N``: read into a table of N-d SVD codes of its own;
``--refit_last_item``: that read also takes the history's last item, its rows shrunk by ``--refit_last_item_ridge``,
read by the last ``--refit_last_item_lags`` items weighted ``--refit_last_item_decay`` ^ k).
Evaluate the new file as any checkpoint
(e.g. ``benchmarks/guidance_sweep.py --model_files``). Prints the validation metrics before and after.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from recbole_dreamrec.analysis.evaluation import Checkpoint  # noqa: E402
from recbole_dreamrec.data import train_loader  # noqa: E402
from recbole_dreamrec.errors import ConfigError, main_guard  # noqa: E402
from recbole_dreamrec.model.settings import check_config  # noqa: E402


@main_guard
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_file")
    parser.add_argument("--out", required=True, help="the refit checkpoint's path")
    parser.add_argument("--refit_features", type=int, default=None,
                        help="F random features of h in the refit read (default: the checkpoint's setting, else 0)")
    parser.add_argument("--refit_code_size", type=int, default=None,
                        help="N > 0: read into a table of N-d SVD codes of its own (default: the checkpoint's "
                             "setting, else 0)")
    parser.add_argument("--refit_last_item", action=argparse.BooleanOptionalAction, default=None,
                        help="with a table, the read also takes the history's last item (default: the checkpoint's "
                             "setting, else off)")
    parser.add_argument("--refit_last_item_ridge", type=float, default=None,
                        help="the ridge on the last item's rows (default: the checkpoint's setting, else 1)")
    parser.add_argument("--refit_last_item_lags", type=int, default=None,
                        help="the last item's rows read the last K items (default: the checkpoint's setting, else 1)")
    parser.add_argument("--refit_last_item_decay", type=float, default=None,
                        help="the k-th item before the last weighted decay^k (default: the checkpoint's setting)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    checkpoint = Checkpoint(args.model_file)
    config, model = checkpoint.config, checkpoint.model
    if config["model"] != "DreamRec":
        raise ConfigError(f"{args.model_file} is a {config['model']} checkpoint: refit_last_step is DreamRec's")
    config["refit_last_step"] = True
    for key in ("refit_features", "refit_code_size", "refit_last_item", "refit_last_item_ridge",
                "refit_last_item_lags", "refit_last_item_decay"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    check_config(config)  # the linear denoiser read in one DDIM step
    before = checkpoint.metrics(checkpoint.valid_data)
    model.set_after_training(config)
    model.finish_training(train_loader(config, checkpoint.train_data))
    after = checkpoint.metrics(checkpoint.valid_data)
    checkpoint.save(args.out)
    for name, metrics in (("before", before), ("after", after)):
        print(f"valid {name}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
