"""Models: temporal modules, 2D backbones, the recognizer and weight loading.

The built-in ``{backbone}_{temporal}`` models live in :mod:`gateshift.models.zoo`, imported
here so that importing this package registers them; :func:`create_model` builds any registered
model (:mod:`gateshift.models.factory`).
"""

from gateshift.models import zoo  # noqa: F401  (registers the built-in models)
from gateshift.models.factory import create_model
from gateshift.models.recognizer import Recognizer
from gateshift.models.weights import load_official_checkpoint, load_pretrained
from gateshift.registry import list_models

__all__ = [
    "Recognizer",
    "create_model",
    "list_models",
    "load_official_checkpoint",
    "load_pretrained",
]
