"""Writing reports: Markdown and CSV tables, whole files written atomically, records as plain and portable data,
and figures.

Shared by the comparison (:mod:`recbole_dreamrec.analysis.benchmark`), tuning (:mod:`recbole_dreamrec.hyper`), the readout
table and the benchmark scripts.
"""

import csv
import os
import platform
import uuid
from pathlib import Path

import recbole
import torch

from recbole_dreamrec.errors import MissingDependencyError

RECBOLE_MARKER = "<recbole>"


def plain(value):
    """A config value as plain YAML/JSON data (enums, devices and numpy scalars as text or numbers)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def portable_path(path, root=None):
    """An absolute ``path`` written so that it means the same on another machine.

    A path inside the installed RecBole package (its bundled datasets) becomes ``<recbole>/...``; a path inside
    ``root`` (the working directory by default: the project folder when the benchmark scripts run from a checkout)
    becomes relative to it; a path elsewhere in the home folder (long runs' checkpoints, kept outside the checkout)
    becomes ``~/...``, which :func:`local_path` reads back; any other path becomes relative to ``root``. Relative
    paths are returned as they are.
    """
    if not os.path.isabs(path):
        return path
    path = os.path.normpath(path)
    recbole_dir = os.path.dirname(os.path.abspath(recbole.__file__))
    if _inside(path, recbole_dir):
        return "/".join([RECBOLE_MARKER, *Path(os.path.relpath(path, recbole_dir)).parts])
    root = os.path.abspath(root or os.getcwd())
    home = os.path.expanduser("~")
    if not _inside(path, root) and home not in ("~", "/") and _inside(path, home):
        return "/".join(["~", *Path(os.path.relpath(path, home)).parts])
    return os.path.relpath(path, root)


def _inside(path, folder):
    return os.path.commonpath([path, os.path.abspath(folder)]) == os.path.abspath(folder)


def local_path(path):
    """A path as :func:`portable_path` wrote it, on this machine: ``~/...`` in this user's home folder."""
    return None if path is None else os.path.expanduser(str(path))


def portable(value, root=None):
    """``value`` (plain data) with every absolute path replaced by :func:`portable_path`."""
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return portable_path(value, root)
    return value


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename: readers never see half a file. The file
    gets the permissions a plain ``open(path, "w")`` would give it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name opened exclusively with the usual permissions (mkstemp's files are private: 0600)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def markdown_table(header, rows):
    """Lines of a Markdown table (a ``|`` inside a cell is written ``/``)."""
    cell = lambda value: str(value).replace("|", "/")  # noqa: E731
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(cell, row)) + " |" for row in rows]


def write_table(markdown_path, csv_path, header, rows, before=(), after=()):
    """The same table as Markdown (with ``before``/``after`` lines around it) and as CSV; returns the Markdown."""
    text = "\n".join([*before, *markdown_table(header, rows), *after]) + "\n"
    atomic_write_text(markdown_path, text)
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return text


def new_figure(**kwargs):
    """A matplotlib ``Figure`` (keyword arguments as ``Figure``'s) that saves files without pyplot or a backend:
    plotting changes no global matplotlib state. Without matplotlib, a ``MissingDependencyError`` says what to
    install."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise MissingDependencyError(
            "plots need matplotlib: pip install 'recbole-dreamrec[bench]' (or pip install matplotlib)"
        ) from error
    return Figure(**kwargs)


def machine_info():
    """Where a run ran: the device (the tables' grouping), the platform, torch, and the CPU's model and the vector
    instructions torch's CPU kernels use (``AVX512``, ``AVX2``, ...): the same seeded run on another CPU can differ
    in the last digits, which then grow over training (float sums in another order)."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return {"device": device, "platform": platform.platform(), "torch": torch.__version__, "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name as the kernel reports it (``/proc/cpuinfo``), else :func:`platform.processor`."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None
