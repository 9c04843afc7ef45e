"""Quick-start API: one training-and-evaluation path shared by the CLI, hyper-parameter tuning and the tests."""

import logging
import os
import sys
from logging import getLogger

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed, set_color

from recbole_dreamrec import errors
from recbole_dreamrec.checks import check_dataset_source, load_dataset
from recbole_dreamrec.config import Config, check_gpus_for_processes
from recbole_dreamrec.data import train_loader
from recbole_dreamrec.errors import UserError
from recbole_dreamrec.trainer import instrument
from recbole_dreamrec.utils import get_model, get_trainer


def run_recbole_dreamrec(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, progress=None):
    r"""Train a model (DreamRec or any RecBole model) on a dataset, evaluate it, and return the results.

    Args:
        model (str, optional): Model name. Defaults to ``None`` (then taken from the config).
        dataset (str, optional): Dataset name. Defaults to ``None`` (then taken from the config).
        config_file_list (list, optional): Config files used to modify experiment parameters.
        config_dict (dict, optional): Parameters dictionary used to modify experiment parameters.
        saved (bool, optional): Whether to save the best model and test it. Defaults to ``True``.
        progress (callable, optional): Called as ``progress(trainer, epoch_idx, valid_score)`` after every
            validation (the trainer's timings, ``start_epoch`` and early-stopping state are read from it).

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``, ``model_file``
        (the best checkpoint, or ``None``), ``last_model_file`` (for ``resume_file``), ``config``, and the cost: ``num_params``, ``epochs_trained``,
        ``train_seconds_per_epoch`` (mean), ``train_cpu_seconds_per_epoch`` and ``valid_cpu_seconds`` (mean CPU
        seconds of this process in a training epoch and in a validation, see
        :class:`~recbole_dreamrec.trainer.TimingMixin`), ``eval_seconds`` (the final test evaluation). A resumed
        run counts and times only the epochs it trained itself.
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    check_dataset_source(config)  # a missing dataset is refused before the log (and its config dump) starts
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    return _train_and_test(config, saved=saved, verbose=True, progress=progress)


def run(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, nproc=1, world_size=-1,
        ip="localhost", port="5678", group_offset=0):
    r"""Like :func:`run_recbole_dreamrec`, on ``nproc`` local processes (data-parallel, torch.distributed).

    RecBole's multi-process path: each process trains on its share of every batch, gradients are all-reduced, and
    evaluation gathers every process's users. ``world_size`` processes in all (several machines: start this on
    each with its ``group_offset``, the first machine's ``ip`` and a free ``port``). NCCL on CUDA, one GPU per
    process (``gpu_id`` must name ``nproc`` GPUs, else a ``ValueError`` says what to pass); gloo on the CPU.

    Returns:
        dict: the result of rank 0 (as :func:`run_recbole_dreamrec`; ``config`` as a plain dict when nproc > 1).
    """
    if nproc == 1 and world_size <= 0:
        return run_recbole_dreamrec(model, dataset, config_file_list, config_dict, saved)
    # bad settings, missing data and too few GPUs fail here, once, rather than in every process
    config = Config(model, dataset, config_file_list, config_dict)
    check_dataset_source(config)
    check_gpus_for_processes(config.final_config_dict, nproc)
    world_size = nproc if world_size == -1 else world_size
    config_dict = {
        **(config_dict or {}),
        "world_size": world_size,
        "ip": ip,
        "port": port,
        "nproc": nproc,
        "offset": group_offset,
    }
    queue = mp.get_context("spawn").SimpleQueue()
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)  # not "Terminating process ... via signal SIGTERM" after a process failed
    try:
        mp.spawn(_run_rank, args=(model, dataset, config_file_list, config_dict, saved, queue), nprocs=nproc,
                 join=True)
    except mp.ProcessRaisedException:
        raise_user_error_of_a_process(queue)  # a user error is one message, as in one process
        raise
    finally:
        spawn_log.setLevel(level)
    return None if queue.empty() else queue.get()


def _run_rank(rank, model, dataset, config_file_list, config_dict, saved, queue):
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores: each process would otherwise start a thread per core
        torch.set_num_threads(max(1, torch.get_num_threads() // config_dict["nproc"]))
    try:
        result = run_recbole_dreamrec(model, dataset, config_file_list, {**config_dict, "local_rank": rank}, saved)
    except UserError as error:
        queue.put({"user_error": type(error).__name__, "message": str(error)})
        raise  # the process still fails, so that spawn stops the others
    if rank == 0:
        queue.put({**result, "config": dict(result["config"].final_config_dict)})


def raise_user_error_of_a_process(queue):
    """Re-raise, in the parent, a :class:`~recbole_dreamrec.errors.UserError` a spawned process reported on
    ``queue`` (same class, same message; the process's traceback stays in its own output). Returns if none was."""
    while not queue.empty():
        item = queue.get()
        if "user_error" in item:
            raise getattr(errors, item["user_error"], UserError)(item["message"]) from None


def load_data_and_model(model_file, device=None):
    r"""RecBole's ``load_data_and_model`` for a checkpoint of any model run through the plugin, on this machine.

    As RecBole's: the checkpoint's config, its data (filtered and split again) and the model with its weights; but a
    checkpoint written on a GPU also loads where no GPU is (the weights are read onto the CPU and the model built
    there), and ``device`` (``'cpu'``, ``'cuda:1'``, ...) chooses another device than the one it was trained on.

    Returns:
        tuple: ``config, model, dataset, train_data, valid_data, test_data``.
    """
    checkpoint = torch.load(model_file, map_location="cpu", weights_only=False)
    config = checkpoint["config"]
    config["device"] = checkpoint_device(config["device"], device)
    if config["device"].type == "cpu":
        config["use_gpu"] = False
    check_dataset_source(config)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    dataset = load_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model.to(config["device"]), dataset, train_data, valid_data, test_data


def checkpoint_device(saved, asked=None):
    """The device to load a checkpoint onto: ``asked`` if given; else the one it was saved from, unless that is a
    GPU this machine does not have (then the CPU)."""
    if asked is not None:
        return torch.device(asked)
    saved = torch.device(saved)
    if saved.type == "cuda" and not (torch.cuda.is_available() and (saved.index or 0) < torch.cuda.device_count()):
        return torch.device("cpu")
    return saved


def objective_function(config_dict=None, config_file_list=None, saved=True):
    r"""The objective of RecBole's ``HyperTuning``: train and evaluate quietly with the given settings.

    Logging is left as the caller set it up (``run_hyper.py`` shows errors only, as RecBole's own tuning does).
    """
    config = Config(config_dict=config_dict, config_file_list=config_file_list)
    init_seed(config["seed"], config["reproducibility"])
    return _train_and_test(config, saved=saved, verbose=False)


def _train_and_test(config, saved, verbose, progress=None):
    # DreamRec's flush_denormal (absent for RecBole's models): process-wide, so set here and restored when it ends
    flush = bool(config["flush_denormal"])  # None where the model has no such key
    if flush:
        torch.set_flush_denormal(True)
    try:
        return _train_and_test_as_set(config, saved, verbose, progress)
    finally:
        if flush:
            torch.set_flush_denormal(False)


def _train_and_test_as_set(config, saved, verbose, progress=None):
    logger = getLogger()

    # dataset filtering and splitting
    dataset = load_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    # model loading and initialization
    init_seed(training_seed(config), config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    train_data = train_loader(config, train_data)  # DreamRec's training windows, where asked for

    # training and evaluation
    trainer = instrument(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)
    if config["resume_file"]:
        trainer.resume(config["resume_file"], train_data)
    show_progress = config["show_progress"] and verbose
    callback = None if progress is None else (lambda epoch_idx, valid_score: progress(trainer, epoch_idx, valid_score))
    if progress is not None:
        trainer.on_checkpoint = lambda: progress.checkpointed(trainer)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, verbose=verbose, saved=saved, show_progress=show_progress, callback_fn=callback
    )
    if finish_training(config, model, trainer, train_data, saved):  # DreamRec's refit_last_step
        if not config["single_spec"]:
            dist.barrier()  # every process validates the checkpoint rank 0 has finished rewriting
        best_valid_result = trainer.evaluate(valid_data, load_best_model=saved, show_progress=show_progress)
        best_valid_score = best_valid_result[config["valid_metric"].lower()]
    if not config["single_spec"]:
        dist.barrier()  # every process tests the best checkpoint rank 0 has finished writing
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=show_progress)
    if not config["single_spec"]:
        dist.destroy_process_group()

    logger.info(set_color("result", "yellow") + "\n" + result_table(best_valid_result, test_result))
    return {
        "model": config["model"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "model_file": trainer.saved_model_file if saved else None,
        "last_model_file": trainer.last_model_file if saved else None,
        "config": config,
        "num_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "epochs_trained": len(trainer.train_epoch_seconds),
        "train_seconds_per_epoch": _mean(trainer.train_epoch_seconds),
        "train_cpu_seconds_per_epoch": _mean(trainer.train_epoch_cpu_seconds),
        "valid_cpu_seconds": _mean(trainer.eval_cpu_seconds[:-1]),  # the last evaluation is the test
        "eval_seconds": trainer.eval_seconds[-1] if trainer.eval_seconds else None,
    }


def finish_training(config, model, trainer, train_data, saved):
    """The model's own step after training (``model.finish_training(train_data)``, where ``model.finishes_training``
    says it has one: DreamRec's ``refit_last_step``), on the weights the run tests: the best checkpoint's, rewritten
    with the result (``saved``), else the model's last. Under DDP every process runs it over its share of the
    training data (the refit sums their normal equations) and rank 0 rewrites the checkpoint. Returns whether the
    weights changed (then the run validates them again)."""
    if not getattr(model, "finishes_training", False):
        return False
    checkpoint = None
    if saved:
        if not config["single_spec"]:
            dist.barrier()  # rank 0 has finished writing the best checkpoint
        checkpoint = torch.load(trainer.saved_model_file, map_location=config["device"], weights_only=False)
        model.load_state_dict(checkpoint["state_dict"])
        model.load_other_parameter(checkpoint.get("other_parameter"))
    changed = model.finish_training(train_data)
    if changed and checkpoint is not None and (config["single_spec"] or dist.get_rank() == 0):
        checkpoint["state_dict"] = model.state_dict()
        torch.save(checkpoint, trainer.saved_model_file)
    return changed


def result_table(best_valid_result, test_result):
    """The run's result as a plain table: a column per metric, a row for the best validation and one for the test
    (a run that never validated has no validation row)."""
    rows = [(name, result) for name, result in (("best valid", best_valid_result), ("test", test_result)) if result]
    if not rows:
        return "(no result)"
    metrics = list(rows[0][1])
    width = max(10, *(len(m) for m in metrics))
    lines = [" " * 10 + "".join(f"{m:>{width + 2}}" for m in metrics)]
    lines += [f"{name:<10}" + "".join(f"{float(result[m]):>{width + 2}.4f}" for m in metrics) for name, result in rows]
    return "\n".join(lines)


def training_seed(config):
    """The seed of this process's training streams: ``seed`` plus the process's global rank (its machine's
    ``offset`` plus its ``local_rank``), so that no two processes of a run, on one machine or several, share one."""
    return config["seed"] + (config["offset"] or 0) + (config["local_rank"] or 0)


def _mean(values):
    """The mean of the known values (not ``None``), or ``None`` (none known)."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None
