"""Models: temporal modules, 2D backbones, the recognizer and weight loading.

The built-in ``{backbone}_{temporal}`` models live in :mod:`gateshift.models.zoo`, imported by
the registry on first use.
"""

from gateshift.models.recognizer import Recognizer
from gateshift.models.weights import load_official_checkpoint, load_pretrained

__all__ = ["Recognizer", "load_official_checkpoint", "load_pretrained"]
