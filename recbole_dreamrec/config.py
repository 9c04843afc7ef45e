"""RecBole's ``Config``, made to find the plugin's models and load the plugin's YAML files."""

import logging
import os

import torch
import torch.distributed as dist
import yaml
from recbole.config import Config as RecBoleConfig

from recbole_dreamrec.errors import ConfigError, InputNotFoundError, UserError
from recbole_dreamrec.utils import get_model, properties_path


class Config(RecBoleConfig):
    """RecBole's configurator with three additions, in increasing priority below user settings:

    1. models are looked up plugin-first (:func:`recbole_dreamrec.utils.get_model`), and a ``data_path`` given for
       ml-100k is honoured (RecBole always reads its bundled copy);
    2. ``properties/overall.yaml`` (evaluation defaults shared by every model run through the plugin),
       ``properties/dataset/<dataset>.yaml`` (e.g. the columns to load for ml-1m, which RecBole ships no file for),
       ``properties/model/<Model>.yaml`` (the plugin's model defaults) and ``properties/dataset/<dataset>/<Model>.yaml``
       (a model's defaults on one data set, e.g. DreamRec's width on ml-1m) are loaded after RecBole's own files;
    3. a model whose default ``loss_type`` is ``CE`` gets ``train_neg_sample_args: ~`` by default (RecBole 1.2.1
       otherwise refuses its own default negative sampling for CE models, e.g. ``SASRec``).

    Config files, ``config_dict`` and ``--key=value`` on the command line override all of these, as in RecBole.
    A model class with a ``check_config(config)`` (DreamRec) has its settings checked here, before any data loads.
    Invalid input raises a :class:`~recbole_dreamrec.errors.UserError`: a config file that is missing
    (``InputNotFoundError``) or not YAML, and a value RecBole's own checks refuse (``ConfigError``, a
    ``ValueError``). RecBole's warning about command-line arguments it does not read is left out: the plugin's
    command lines read them.

    Multi-process runs (``local_rank`` set by :func:`recbole_dreamrec.quick_start.run`) use RecBole's NCCL/CUDA
    set-up where CUDA is in use (one GPU per process: :func:`check_gpus_for_processes`), and gloo on the CPU
    otherwise (RecBole hard-codes NCCL).
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except UserError:
            raise
        except FileNotFoundError as error:  # a file of config_file_list
            raise InputNotFoundError(f"config file {error.filename!r} not found") from error
        except yaml.YAMLError as error:
            raise ConfigError(f"a config file is not valid YAML: {error}") from error
        except ValueError as error:  # RecBole's own checks of a setting
            raise ConfigError(f"invalid setting: {error}") from error
        check_plugin_settings(self)
        if hasattr(self.model_class, "check_config"):
            self.model_class.check_config(self)

    def _load_cmd_line(self):
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)  # RecBole warns about every argument that is not --key=value
        try:
            return super()._load_cmd_line()
        finally:
            logging.disable(previous)

    def _get_model_and_dataset(self, model, dataset):
        if isinstance(model, str):
            model = get_model(model)
        return super()._get_model_and_dataset(model, dataset)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        if self.internal_config_dict.get("loss_type") == "CE":
            self.internal_config_dict["train_neg_sample_args"] = None
        for path in (
            properties_path("overall.yaml"),
            properties_path("dataset", f"{dataset}.yaml"),
            properties_path("model", f"{model}.yaml"),
            properties_path("dataset", dataset, f"{model}.yaml"),  # a model's own settings on this data set
        ):
            if path.is_file():
                self._update_internal_config_dict(str(path))

    def _set_default_parameters(self):
        super()._set_default_parameters()
        # RecBole points ml-100k at its bundled copy whatever data_path says: a data_path given is honoured
        given = self.external_config_dict.get("data_path")
        if self.dataset == "ml-100k" and given is not None:
            self.final_config_dict["data_path"] = os.path.join(str(given), self.dataset)

    def _init_device(self):
        settings = self.final_config_dict
        if "local_rank" not in settings:
            return super()._init_device()
        # as RecBole does, but before CUDA is first queried: the CUDA runtime reads the variable once, when it starts
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids(settings))
        if uses_cuda(settings):
            check_gpus_for_processes(settings, settings["nproc"])
            return super()._init_device()
        rank = settings["local_rank"] + settings["offset"]
        dist.init_process_group(
            backend="gloo",
            rank=rank,
            world_size=settings["world_size"],
            init_method=f"tcp://{settings['ip']}:{settings['port']}",
        )
        settings.update(device=torch.device("cpu"), single_spec=False, gpu_id="")
        if settings["local_rank"] != 0:
            settings.update(state="error", show_progress=False, verbose=False)


def check_plugin_settings(config):
    """Raise :class:`~recbole_dreamrec.errors.ConfigError` for an invalid plugin-wide setting
    (``properties/overall.yaml``, every model) or a RecBole setting RecBole itself does not check."""
    for key in ("epochs", "train_batch_size", "eval_batch_size"):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
    minutes = config["checkpoint_minutes"]
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes < 0):
        raise ConfigError(f"checkpoint_minutes must be a number >= 0 (0: after each epoch only), got {minutes!r}")


def gpu_ids(settings):
    """The GPU ids named by ``gpu_id`` (``'0,1'``, ``0`` or, from RecBole's command line, ``(0, 1)``), as strings."""
    gpu_id = settings["gpu_id"]
    parts = gpu_id if isinstance(gpu_id, (tuple, list)) else str(gpu_id).split(",")
    return [str(part).strip() for part in parts if str(part).strip()]


def uses_cuda(settings):
    """Whether a run with these settings trains on CUDA: a GPU is visible, ``use_gpu`` is on and ``gpu_id`` names one."""
    return bool(settings["use_gpu"]) and bool(gpu_ids(settings)) and torch.cuda.is_available()


def check_gpus_for_processes(settings, nproc):
    """Raise ``ValueError`` when ``nproc`` processes on CUDA would have fewer GPUs than processes.

    On CUDA every process gets its own GPU (RecBole's NCCL set-up puts process k on ``cuda:k`` of the ``gpu_id``
    devices; NCCL refuses two processes on one GPU); on the CPU (gloo) any number of processes runs.
    """
    if nproc <= 1 or not uses_cuda(settings):
        return
    ids, visible = gpu_ids(settings), torch.cuda.device_count()
    if len(ids) < nproc or visible < nproc:
        found = f"gpu_id={','.join(ids)!r} names {len(ids)}"
        if len(ids) >= nproc:
            found += f" but {visible} visible here (torch.cuda.device_count())"
        raise ValueError(
            f"nproc={nproc} processes on CUDA need one GPU each, but {found} (NCCL, which RecBole uses on GPUs, "
            f"refuses two processes on one GPU): pass --gpu_id={','.join(map(str, range(nproc)))} on a machine with "
            f"{nproc} GPUs, --nproc={min(len(ids), visible)} to run one process per GPU, or --use_gpu=False to run "
            "the processes on the CPU (gloo)"
        )
