"""Checks that turn bad input into one clear error before any training: where the data is, whether the atomic
files have the columns the run needs, whether anything is left after filtering, whether a checkpoint exists; and the
single-process handling of RecBole's dataset download. Each error is a :class:`~recbole_dreamrec.errors.UserError`
(see :mod:`recbole_dreamrec.errors`), which the command lines print as one line."""

import contextlib
import os
import tempfile
from pathlib import Path

import recbole
import torch.distributed as dist
import yaml
from recbole.data import create_dataset
from recbole.utils import FeatureType

from recbole_dreamrec.errors import DataError, DownloadError, InputNotFoundError


def recbole_download_urls():
    path = Path(recbole.__file__).parent / "properties" / "dataset" / "url.yaml"
    return yaml.safe_load(path.read_text()) or {}


def dataset_files(config):
    name = config["dataset"]
    if config["benchmark_filename"]:
        return [f"{name}.{part}.inter" for part in config["benchmark_filename"]]
    return [f"{name}.inter"]


def check_dataset_source(config):
    """``"local"`` when the dataset's files are in ``config['data_path']``, ``"download"`` when RecBole will
    download it; otherwise an ``InputNotFoundError`` (a ``FileNotFoundError``) saying where RecBole looked and how
    to point ``data_path``."""
    name, folder = config["dataset"], Path(config["data_path"])
    hint = (
        f"put the atomic files in DIR/{name}/ (e.g. DIR/{name}/{name}.inter) and pass --data_path=DIR "
        f"(config key data_path)"
    )
    if folder.is_dir():
        files = dataset_files(config)
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise InputNotFoundError(f"dataset {name!r}: the folder {folder} exists but lacks {missing}; {hint}")
        for file in files:
            check_atomic_header(config, folder / file)
        return "local"
    if name not in recbole_download_urls():
        raise InputNotFoundError(
            f"dataset {name!r} not found: RecBole looked in {folder} and knows no download for it; {hint}"
        )
    return "download"


def check_atomic_header(config, path):
    """The id columns (and the time column the time-ordered split needs) are in the atomic file's header, the ids
    declared as tokens (RecBole fails with a bare ``KeyError`` on a missing column, obscurely on other types)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split(config["field_separator"])
    declared = dict(column.split(":", 1) for column in header if ":" in column)
    needed = {config["USER_ID_FIELD"]: ("USER_ID_FIELD", "token", ""),
              config["ITEM_ID_FIELD"]: ("ITEM_ID_FIELD", "token", "")}
    if (config["eval_args"] or {}).get("order") == "TO" and not config["benchmark_filename"]:
        needed[config["TIME_FIELD"]] = ("TIME_FIELD", "float", " (needed for eval_args.order: TO)")
    for field, (key, kind, why) in needed.items():
        if field not in declared:
            raise DataError(
                f"{path.name}: no column {field!r}{why} in the header {header}; name it '{field}:{kind}' there, or "
                f"set --{key}=<the column's name>"
            )
    for field in (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]):
        if field in declared and declared[field] != "token":
            raise DataError(
                f"{path.name}: column {field!r} is typed {declared[field]}; ids must be declared '{field}:token' "
                f"in the atomic file header (header: {header})"
            )


@contextlib.contextmanager
def single_process_group():
    """A one-process gloo group for the duration, when none exists: RecBole's download path calls
    ``torch.distributed.barrier()`` even in a single process (RecBole issue #2050)."""
    if dist.is_available() and not dist.is_initialized():
        with tempfile.TemporaryDirectory() as tmp:
            dist.init_process_group("gloo", init_method=f"file://{os.path.join(tmp, 'store')}", rank=0, world_size=1)
            try:
                yield
            finally:
                dist.destroy_process_group()
    else:
        yield


def load_dataset(config):
    """RecBole's ``create_dataset`` with the checks above: data source first, downloaded in a single process if
    needed (a failed download says how to use local files), then the loaded columns and the filtered size."""
    source = check_dataset_source(config)
    if source == "local":
        dataset = _create_dataset(config)
    else:
        try:
            with single_process_group():
                dataset = _create_dataset(config)
        except OSError as error:  # URLError and other network or file failures
            raise DownloadError(
                f"dataset {config['dataset']!r} is not in {config['data_path']} and downloading it failed "
                f"({type(error).__name__}: {error}). Without network, pass --data_path=DIR where "
                f"DIR/{config['dataset']}/{config['dataset']}.inter exists."
            ) from error
    check_loaded_dataset(config, dataset)
    return dataset


def _filters(config):
    return {k: config[k] for k in ("val_interval", "user_inter_num_interval", "item_inter_num_interval")}


def _create_dataset(config):
    try:
        return create_dataset(config)
    except ValueError as error:
        if "feat is empty" in str(error):  # RecBole's own words when filtering removed everything
            raise DataError(
                f"dataset {config['dataset']!r}: no interactions left after filtering ({_filters(config)})"
            ) from error
        raise


def check_loaded_dataset(config, dataset):
    """The columns the run needs were loaded with the right types, and interactions are left after filtering."""
    name = config["dataset"]
    loaded = list(dataset.inter_feat.columns)
    needed = {dataset.uid_field: "user ids", dataset.iid_field: "item ids"}
    if config["eval_args"]["order"] == "TO" and not config["benchmark_filename"]:
        needed[dataset.time_field] = "eval_args.order: TO"
    for field, why in needed.items():
        if field not in loaded:
            raise DataError(
                f"dataset {name!r}: the interactions have no column {field!r} (needed for {why}); loaded columns: "
                f"{loaded}. Check the atomic file header ('{field}:type') and load_col ({config['load_col']})."
            )
    for field in (dataset.uid_field, dataset.iid_field):
        if dataset.field2type[field] != FeatureType.TOKEN:
            raise DataError(
                f"dataset {name!r}: column {field!r} is typed {dataset.field2type[field].value}; ids must be "
                f"declared '{field}:token' in the atomic file header"
            )
    if len(dataset.inter_feat) == 0:
        raise DataError(f"dataset {name!r}: no interactions left after filtering ({_filters(config)})")


def check_model_file(path):
    """A checkpoint to load exists (``torch.load`` alone fails with a bare ``FileNotFoundError`` traceback); a
    record's ``~/...`` path (:func:`~recbole_dreamrec.reporting.portable_path`) is read in this home folder."""
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise InputNotFoundError(
            f"checkpoint {str(path)!r} not found: pass the .pth file a training run saved (under checkpoint_dir, "
            "saved/ by default)"
        )
    return path
