"""Model/trainer lookup (plugin first, RecBole second) and the location of the plugin's YAML files."""

import importlib
import sys
from pathlib import Path

from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

_PACKAGE_DIR = Path(__file__).resolve().parent


def properties_path(*parts):
    """Path of a file under the plugin's ``properties/`` folder.

    A wheel installs ``properties/`` as ``recbole_dreamrec/properties`` (``package_dir`` in ``setup.py``); in a
    source checkout or an editable install it is the top-level ``properties/`` next to the package.
    """
    for root in (_PACKAGE_DIR / "properties", _PACKAGE_DIR.parent / "properties"):
        if root.is_dir():
            return root.joinpath(*parts)
    raise FileNotFoundError(f"recbole_dreamrec: no properties/ folder found next to {_PACKAGE_DIR}")


def get_model(model_name):
    """The model class named ``model_name``: the plugin's own models first, then RecBole's."""
    module_path = f"recbole_dreamrec.model.{model_name.lower()}"
    if importlib.util.find_spec(module_path) is not None:
        return getattr(importlib.import_module(module_path), model_name)
    return recbole_get_model(model_name)


def get_trainer(model_type, model_name):
    """The trainer class for a model: ``recbole_dreamrec.trainer.<model_name>Trainer`` if it exists, else RecBole's."""
    trainer_module = importlib.import_module("recbole_dreamrec.trainer")
    if hasattr(trainer_module, model_name + "Trainer"):
        return getattr(trainer_module, model_name + "Trainer")
    return recbole_get_trainer(model_type, model_name)


def register_with_recbole(model_names=("DreamRec",)):
    """Make RecBole's own ``get_model`` find the plugin's models, e.g. in ``recbole.quick_start.load_data_and_model``.

    RecBole looks a model up as the module ``recbole.model.<type>.<name lower>``; this registers the plugin's model
    module under that name in ``sys.modules``. Nothing of RecBole's is replaced.
    """
    for name in model_names:
        module = importlib.import_module(f"recbole_dreamrec.model.{name.lower()}")
        sys.modules.setdefault(f"recbole.model.sequential_recommender.{name.lower()}", module)
