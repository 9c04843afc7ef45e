"""Compatibility of RecBole 1.2.1 with today's Python stack.

RecBole 1.2.1 (the newest release) was written for numpy 1.x, pandas 1.x/2.x and torch < 2.6. This module
collects, in one place, every fix the plugin needs to run it on numpy 2, torch >= 2.6 and current setuptools.
:func:`apply` runs them once; ``import recbole_dreamrec`` calls it before anything from RecBole is imported.

What is fixed here, and how (each fix has its own test in ``tests/test_compat.py``):

==========================  ==============================================  ===================================
problem                     where it bites                                  fix
==========================  ==============================================  ===================================
numpy 2 removed ``float_``, ``import recbole.quick_start`` (ray uses        :func:`restore_numpy_aliases`: add
``complex_``, ``unicode_``, ``np.bool8``), ``Config()`` (``np.float_``),     the missing names back to ``numpy``
``bool8``; numpy 1.24       metrics and ``Interaction`` (``np.float``),      as aliases of the types they always
removed ``float``/``int``   which only ``Config.__init__`` defined, so       meant. Nothing that exists is
                            ``load_data_and_model`` failed in a fresh        overwritten.
                            process
torch >= 2.6 loads with     RecBole's trainer (best checkpoint after         :func:`patch_torch_load_for_recbole`:
``weights_only=True``       training, resume) and ``load_data_and_model``    only calls made *from RecBole's own
                            pickle a ``Config``                             modules* without an explicit
                                                                            ``weights_only`` get ``False``.
                                                                            Everyone else keeps torch's safe
                                                                            default.
``sine.py`` runs            importing ``recbole.model.sequential_           :func:`disable_recbole_anomaly_
``set_detect_anomaly(True)``recommender`` slows every model's training      detection`: import it once, then
at import                   by about 1.3x                                   switch anomaly detection back off.
ray 2.6.3 warns that        importing ``recbole.quick_start`` (which        :func:`import_recbole_quick_start`:
``pkg_resources`` is        imports ray) prints a two-line                  import it once with that one
deprecated (setuptools 81)  ``UserWarning`` in every process, before any    warning ignored.
                            message of the plugin
torch 2.x deprecates        every ``Trainer.fit`` builds                    :func:`use_torch_amp_in_recbole`:
``torch.cuda.amp``'s        ``torch.cuda.amp.GradScaler`` and logs a        the trainer module's ``amp`` names
``GradScaler`` and          ``FutureWarning`` (NCL also ``autocast``)       the ``torch.amp`` ones on CUDA, which
``autocast``                                                                the deprecated aliases stand for.
pandas 2 warns of pandas 3  every dataset load prints a ``FutureWarning``    :func:`quiet_pandas_3_warnings_of_
behaviour (chained          from RecBole's ``dataset.py`` (and              recbole`: those two warnings,
``fillna(inplace=True)``,   ``sequential_dataset.py`` for pre-split files)  attributed to RecBole's dataset
``Series.agg(len)``)                                                        modules, are ignored; pandas 3
                                                                            itself is refused (below)
numpy 2 deprecates a        every sequential dataset build sorts its        :func:`sort_interactions_on_arrays`:
``__array_wrap__`` without  rows (``Interaction.sort``) with                ``Interaction.sort`` with numpy's
``return_scalar``, which    ``np.argsort(<torch tensor>)``: numpy falls     stable argsort of the key's array,
torch's tensors still have  back to the tensor's ``__array_wrap__``; a      the same order RecBole's gives.
                            ``DeprecationWarning`` now, a ``TypeError``
                            in the numpy that ends the deprecation
RecBole's ``ensure_dir``    a DDP run: every rank's ``init_logger`` (and    :func:`create_directories_race_free`:
checks, then creates        trainer, dataset save) creates ``log/<model>``  ``os.makedirs(exist_ok=True)``, in
(``exists`` then            at once; the loser of the race dies with        every RecBole module that imported
``makedirs``)               ``FileExistsError`` and takes the run down      ``ensure_dir``
==========================  ==============================================  ===================================

Fixed by version bounds in ``setup.py`` instead (the clean answer there; tests check the behaviour):

* Python ``>= 3.9, < 3.12``: RecBole 1.2.1 requires ``ray <= 2.6.3``, and ray publishes no wheels of those
  versions for Python 3.12 or later (nor a source distribution), so RecBole cannot be installed there.
  :func:`check_python_version` also refuses other versions at import time, with this reason.
* ``setuptools < 82``: ray 2.6.3 (imported by ``recbole.quick_start``) needs ``pkg_resources``.
* ``pandas < 3``: pandas 3's copy-on-write makes ``Dataset._fill_nan``'s ``fillna(inplace=True)`` a silent
  no-op, and ``Series.agg(len)`` returns one scalar, breaking every ``token_seq`` feature and the
  ``item_length`` of pre-split benchmark files.
* ``hyperopt == 0.2.5`` (extra ``tune``): RecBole's exhaustive search breaks on hyperopt 0.3.

Security note: RecBole checkpoints are pickles (they hold the whole ``Config``). Load only checkpoints you trust.
"""

import functools
import os
import re
import sys
import types
import warnings

import numpy as np
import torch

# Python versions the plugin runs on: [first, end). ray <= 2.6.3 (RecBole 1.2.1's pin) has no Python 3.12 wheels.
SUPPORTED_PYTHON = ((3, 9), (3, 12))

# numpy name -> the type it always stood for (numpy 1.x semantics).
NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,
    "float": float,
    "int": int,
}

_applied = False


def check_python_version(version=None):
    """Refuse a Python outside :data:`SUPPORTED_PYTHON` with the reason (``version``: a ``sys.version_info``-like
    tuple, this interpreter's by default)."""
    version = tuple(version or sys.version_info)[:3]
    (low, high), found = SUPPORTED_PYTHON, ".".join(map(str, version))
    if not low <= version[:2] < high:
        raise ImportError(
            f"recbole_dreamrec runs on Python >= {low[0]}.{low[1]} and < {high[0]}.{high[1]} (found {found}): "
            "RecBole 1.2.1 requires ray <= 2.6.3, which publishes no wheels for Python 3.12 or later. "
            f"Use Python {low[0]}.{low[1]} to {high[0]}.{high[1] - 1}."
        )


def check_pandas_version(version=None):
    """Refuse pandas >= 3 loudly: RecBole 1.2.1 would load token_seq fields wrongly and leave NaNs silently."""
    import pandas

    version = version or pandas.__version__
    if int(version.split(".")[0]) >= 3:
        raise ImportError(
            f"recbole_dreamrec needs pandas < 3 (found {version}): RecBole 1.2.1 mis-loads token_seq features and "
            "skips NaN filling under pandas 3. Install the supported version with: pip install 'pandas<3'"
        )


def restore_numpy_aliases():
    """Define the numpy names RecBole 1.2.1 and ray 2.6.3 use, where this numpy lacks them.

    Returns:
        list[str]: the names that were added.
    """
    added = []
    for name, value in NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)
            added.append(name)
    return added


def _called_from_recbole(depth=2):
    frame = sys._getframe(depth)
    return frame.f_globals.get("__name__", "").split(".")[0] == "recbole"


def patch_torch_load_for_recbole():
    """Make RecBole's own ``torch.load`` calls load its full checkpoints again (torch >= 2.6).

    Only a call whose caller is a ``recbole.*`` module and that does not pass ``weights_only`` is changed; it gets
    ``weights_only=False``, which is what RecBole was written for. Calls from any other module are untouched.
    """
    if getattr(torch.load, "_recbole_dreamrec_patched", False):
        return
    original_load = torch.load

    def load(*args, **kwargs):
        if "weights_only" not in kwargs and _called_from_recbole():
            kwargs["weights_only"] = False
        return original_load(*args, **kwargs)

    load.__doc__ = original_load.__doc__
    load.__wrapped__ = original_load
    load._recbole_dreamrec_patched = True
    torch.load = load


def disable_recbole_anomaly_detection():
    """Import RecBole's sequential models (``sine.py`` turns anomaly detection on) and turn it back off."""
    import recbole.model.sequential_recommender  # noqa: F401  (the import is the point)

    torch.autograd.set_detect_anomaly(False)


def import_recbole_quick_start():
    """Import ``recbole.quick_start`` (and with it ray 2.6.3) with ray's ``pkg_resources`` deprecation warning
    ignored; every other warning is shown as usual."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import recbole.quick_start  # noqa: F401  (the import is the point)


# pandas 2's announcements of pandas 3 behaviour that RecBole's dataset modules trigger on every load
PANDAS_3_WARNINGS = (
    "A value is trying to be set on a copy of a DataFrame or Series through chained assignment",
    "using <built-in function len> in Series.agg cannot aggregate",
)


def quiet_pandas_3_warnings_of_recbole():
    """Ignore the :data:`PANDAS_3_WARNINGS` when they come from ``recbole.data.dataset.*``: they announce pandas 3
    behaviour, and pandas 3 is refused (:func:`check_pandas_version`). Any other warning, and these from any
    other module, is shown as usual."""
    for message in PANDAS_3_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(message), category=FutureWarning,
                                module=r"recbole\.data\.dataset\.")


def use_torch_amp_in_recbole():
    """Give RecBole's trainer module (``import torch.cuda.amp as amp``) the non-deprecated equivalents:
    ``amp.GradScaler(...)`` is ``torch.amp.GradScaler("cuda", ...)`` and ``amp.autocast(...)`` is
    ``torch.amp.autocast("cuda", ...)``, exactly what the deprecated ``torch.cuda.amp`` aliases call."""
    import recbole.trainer.trainer as recbole_trainer

    recbole_trainer.amp = types.SimpleNamespace(
        GradScaler=functools.partial(torch.amp.GradScaler, "cuda"),
        autocast=functools.partial(torch.amp.autocast, "cuda"),
    )


def sort_interactions_on_arrays():
    """Give RecBole's ``Interaction`` a ``sort`` that hands numpy an array, not a torch tensor.

    RecBole's ``Interaction.sort`` calls ``np.argsort(tensor, kind="stable")``; numpy 2 cannot call the tensor's own
    ``argsort`` with those arguments and falls back to converting it and wrapping the result with the tensor's
    ``__array_wrap__``, whose signature numpy 2 deprecates. This one sorts the same way (by the last field first,
    numpy's stable argsort, a descending field by reversing the ascending order, the first column of a 2-d field)
    on the key's array, with RecBole's checks of ``by`` and ``ascending``.
    """
    from recbole.data.interaction import Interaction

    def sort(self, by, ascending=True):
        by = [by] if isinstance(by, str) else by
        if not isinstance(by, (list, tuple)):
            raise TypeError(f"Wrong type of by [{by}].")
        for field in by:
            if field not in self.interaction:
                raise ValueError(f"[{field}] is not exist in interaction [{self}].")
        ascending = [ascending] if isinstance(ascending, bool) else ascending
        if not isinstance(ascending, (list, tuple)) or not all(isinstance(a, bool) for a in ascending):
            raise TypeError(f"Wrong type of ascending [{ascending}].")
        if len(ascending) == 1:
            ascending = list(ascending) * len(by)
        if len(by) != len(ascending):
            raise ValueError(f"by [{by}] and ascending [{ascending}] should have same length.")
        for field, up in reversed(list(zip(by, ascending))):
            key = self.interaction[field]
            key = key if key.dim() == 1 else key[..., 0]
            index = np.argsort(key.cpu().numpy(), kind="stable")  # [N]
            self._reindex(torch.from_numpy(np.ascontiguousarray(index if up else index[::-1])))

    sort.__doc__ = Interaction.sort.__doc__
    Interaction.sort = sort


# RecBole modules that bind ``ensure_dir`` at import (``from recbole.utils... import ensure_dir``, and the packages
# that re-export those modules with ``import *``).
ENSURE_DIR_MODULES = (
    "recbole.utils.utils",
    "recbole.utils",
    "recbole.utils.logger",
    "recbole.trainer.trainer",
    "recbole.trainer",
    "recbole.data.utils",
    "recbole.data.dataset.dataset",
    "recbole.data",
)


def create_directories_race_free():
    """Give RecBole an ``ensure_dir`` that two processes can call at once.

    RecBole's checks ``os.path.exists`` and then calls ``os.makedirs``: when the ranks of a DDP run (or two runs
    started together) create ``log/<model>`` at the same moment, one of them finds it created between the check and
    the call and dies with ``FileExistsError``. ``os.makedirs(exist_ok=True)`` does both in one call and still
    raises where the path exists as a file.
    """
    import importlib

    def ensure_dir(dir_path):
        os.makedirs(dir_path, exist_ok=True)

    ensure_dir.__doc__ = "Make sure the directory exists (created if missing; safe when processes race)."
    for name in ENSURE_DIR_MODULES:
        importlib.import_module(name).ensure_dir = ensure_dir


def apply():
    """Apply every fix above, once per process."""
    global _applied
    if _applied:
        return
    check_python_version()
    check_pandas_version()
    restore_numpy_aliases()
    patch_torch_load_for_recbole()
    disable_recbole_anomaly_detection()
    import_recbole_quick_start()
    use_torch_amp_in_recbole()
    quiet_pandas_3_warnings_of_recbole()
    sort_interactions_on_arrays()
    create_directories_race_free()
    _applied = True
