"""The input contract between a backbone and the data pipeline.

Each backbone carries one immutable :class:`InputSpec` saying what a frame must look like when it
reaches the network: colour order, value range, mean and standard deviation, and the crop and
resize sizes used for training and testing. The data pipeline applies it; the model never converts
colours. It lives outside ``models/`` and ``data/`` because both sides read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

ColourOrder = Literal["RGB", "BGR"]


@dataclass(frozen=True)
class InputSpec:
    """How uint8 RGB frames become network input.

    ``value_range`` is the scale of a pixel before normalisation: 1.0 means uint8 / 255, 255.0
    means raw 0-255 values. ``mean`` and ``std`` are in the network's colour order and in that
    scale: ``x = (pixel * value_range / 255 - mean) / std``.
    """

    colour: ColourOrder
    value_range: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_size: int
    resize_size: int

    def __post_init__(self) -> None:
        if self.colour not in ("RGB", "BGR"):
            raise ValueError(f"InputSpec.colour must be 'RGB' or 'BGR', got {self.colour!r}")
        if self.value_range not in (1.0, 255.0):
            raise ValueError(f"InputSpec.value_range must be 1.0 or 255.0, got {self.value_range}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ValueError("InputSpec.mean and .std need three values, std positive")
        if not 0 < self.crop_size <= self.resize_size:
            raise ValueError(
                f"InputSpec needs 0 < crop_size <= resize_size, got {self.crop_size}, "
                f"{self.resize_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        try:
            return cls(
                colour=data["colour"],
                value_range=float(data["value_range"]),
                mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
                crop_size=int(data["crop_size"]),
                resize_size=int(data["resize_size"]),
            )
        except KeyError as err:
            raise ValueError(f"input spec is missing the key {err.args[0]!r}") from err


#: Caffe-converted BN-Inception (TSN, GSM): BGR in 0-255 minus the Caffe mean, 224 crops.
CAFFE_BGR_224 = InputSpec("BGR", 255.0, (104.0, 117.0, 128.0), (1.0, 1.0, 1.0), 224, 256)
#: Caffe-converted InceptionV3 as used by GSM/GSF: as above but 229 crops (resize 261).
CAFFE_BGR_229 = InputSpec("BGR", 255.0, (104.0, 117.0, 128.0), (1.0, 1.0, 1.0), 229, 261)
#: torchvision ImageNet models (ResNet, MobileNetV2).
IMAGENET_RGB_224 = InputSpec("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224, 256)
