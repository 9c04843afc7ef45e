"""Model/trainer lookup (plugin first, RecBole second) and the location of the plugin's YAML files."""

import importlib
import re
import sys
from pathlib import Path

import recbole.model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_dreamrec.errors import ConfigError

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


PLUGIN_MODELS = ("DreamRec",)
RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


def available_models():
    """Names of the plugin's models and RecBole's (read from RecBole's source files, importing nothing)."""
    names = list(PLUGIN_MODELS)
    root = Path(recbole.model.__file__).parent
    for package in RECBOLE_MODEL_PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            match = re.search(rf"^class ({path.stem})\(", path.read_text(encoding="utf-8"), re.M | re.I)
            if match:
                names.append(match.group(1))
    return names


def get_model(model_name):
    """The model class named ``model_name``: the plugin's own models first, then RecBole's.

    Unlike RecBole's lookup, an unknown name raises a ``ConfigError`` (a ``ValueError``) that lists the valid names
    (RecBole's own would first fail importing its optional ``exlib`` models' dependencies).
    """
    if model_name in PLUGIN_MODELS:
        return getattr(importlib.import_module(f"recbole_dreamrec.model.{model_name.lower()}"), model_name)
    for package in RECBOLE_MODEL_PACKAGES:
        module_path = f"recbole.model.{package}.{model_name.lower()}"
        if (Path(recbole.model.__file__).parent / package / f"{model_name.lower()}.py").is_file():
            module = importlib.import_module(module_path)
            if hasattr(module, model_name):
                return getattr(module, model_name)
    raise ConfigError(
        f"unknown model {model_name!r} (names are case-sensitive); valid models: {', '.join(available_models())}"
    )


def get_trainer(model_type, model_name):
    """The trainer class for a model: ``recbole_dreamrec.trainer.<model_name>Trainer`` if it exists, else RecBole's."""
    trainer_module = importlib.import_module("recbole_dreamrec.trainer")
    if hasattr(trainer_module, model_name + "Trainer"):
        return getattr(trainer_module, model_name + "Trainer")
    return recbole_get_trainer(model_type, model_name)


def register_with_recbole(model_names=PLUGIN_MODELS):
    """Make RecBole's own ``get_model`` find the plugin's models, e.g. in ``recbole.quick_start.load_data_and_model``.

    RecBole looks a model up as the module ``recbole.model.<type>.<name lower>``; this registers the plugin's model
    module under that name in ``sys.modules``. Nothing of RecBole's is replaced.
    """
    for name in model_names:
        module = importlib.import_module(f"recbole_dreamrec.model.{name.lower()}")
        sys.modules.setdefault(f"recbole.model.sequential_recommender.{name.lower()}", module)
