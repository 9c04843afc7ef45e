"""recbole-dreamrec: DreamRec (Yang et al., NeurIPS 2023) as a RecBole plugin.

Importing the package applies the documented RecBole compatibility fixes (:mod:`recbole_dreamrec.compat`)
before anything of RecBole is imported, and registers ``DreamRec`` with RecBole's model lookup so that
``recbole.quick_start.load_data_and_model`` reloads DreamRec checkpoints.
"""

from recbole_dreamrec import compat

compat.apply()

from recbole_dreamrec.config import Config  # noqa: E402
from recbole_dreamrec.model import DreamRec  # noqa: E402
from recbole_dreamrec.quick_start import load_data_and_model, objective_function, run_recbole_dreamrec  # noqa: E402
from recbole_dreamrec.utils import get_model, get_trainer, register_with_recbole  # noqa: E402

register_with_recbole()

__version__ = "0.1.0"

__all__ = [
    "Config",
    "DreamRec",
    "get_model",
    "get_trainer",
    "load_data_and_model",
    "objective_function",
    "run_recbole_dreamrec",
    "__version__",
]
