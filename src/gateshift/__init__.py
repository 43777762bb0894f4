"""gateshift: video action recognition with the Gate-Shift Module (GSM), GSF, TSM and TSN.

Public API::

    model = gateshift.create_model("bninception_gsm", num_classes=174, num_segments=8)
    gateshift.list_models("resnet50_*")
    gateshift.load_pretrained(model, "bn_inception-9f5701afb96c8044.pth")   # ImageNet weights
    gateshift.load_official_checkpoint(model, "something_BNInception_gsm_8.pth.tar")
"""

from gateshift.input_spec import InputSpec
from gateshift.models.weights import load_official_checkpoint, load_pretrained
from gateshift.registry import create_model, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "InputSpec",
    "__version__",
    "create_model",
    "list_models",
    "load_official_checkpoint",
    "load_pretrained",
    "register_model",
]
