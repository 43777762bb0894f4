"""The typed configuration tree: the single home of every default.

``Config`` = ``model`` + ``data`` + ``optim`` + ``train`` + ``eval`` + ``out_dir`` + ``seed``,
as dataclasses read through OmegaConf: a YAML file under ``configs/`` is merged over these
defaults, then dotted overrides from the command line (``optim.lr=0.02 model.num_segments=16``).
Unknown keys and values of the wrong type are errors naming the key (OmegaConf's), and
:func:`validate` adds the checks types cannot express. The defaults are the papers' recipe
(GSM arXiv 1912.00381, Sec. 4.1; GSF arXiv 2203.08897): SGD momentum 0.9, lr 0.01 per 32 clips
scaled linearly with the global batch, weight decay 5e-4, 10 warm-up epochs then cosine to 60,
gradient-norm clip 20, dropout 0.5.

Each field's doc is its one-line trailing comment, which ``gateshift config`` shows next to the
key's type and value (read from this file by :mod:`gateshift.config_keys`; a test requires one on
every field). Comments rather than attribute docstrings or ``field(metadata=...)``: a field stays
one line that reads like a row of a table (name, type, default, meaning), as it did before the
docs were shown, and the classes stay short enough to read in one screen. Keep a comment to what
the user needs to choose the value; longer explanations belong in the module that uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gateshift.data.format_names import FORMATS, DataFormat


@dataclass
class ModelConfig:
    name: str = "resnet50_gsm"  # {backbone}_{tsn|tsm|gsm|gsf}; `gateshift models` lists them
    num_segments: int = 8  # frames per clip (T)
    pretrained: str | None = None  # ImageNet weight file for the backbone
    init_from: str | None = None  # start from a checkpoint: authors' .pth.tar or a run dir
    dropout: float = 0.5  # dropout before the classifier
    interleave: bool = True  # GSM/GSF channel interleave of the released code
    gsf_ratio: float | None = None  # percent of channels GSF processes (family default)
    shift_div: int = 8  # TSM: 1/shift_div of channels shift each way
    width: int | None = None  # ResNet base width (64 as published; 16 for the demo's slim net)
    partial_bn: bool = False  # freeze every BN but the first (TSN's partial BN)
    causal: bool = False  # causal TSM/GSM/GSF: frame t sees frames <= t only (`gateshift stream`)


@dataclass
class DataConfig:
    format: DataFormat = "folder"  # layout of the annotation files and media (README: Data)
    root: str = ""  # dataset root (required)
    train_split: str = "train"  # split trained on (train, val or test)
    val_split: str = "val"  # split validated on during training, and evaluated by default
    annotations: dict[str, str] = field(default_factory=dict)  # per-format file overrides
    sampling: Literal["segments", "dense"] = "segments"  # one frame per segment (TSN), or a run
    frame_interval: int = 8  # dense sampling: stride between the num_segments frames
    scales: list[float] = field(default_factory=lambda: [1.0, 0.875, 0.75, 0.66])  # crop scales
    flip: bool = True  # random horizontal flip (with the dataset's left/right label swap)
    label_map: dict[int, int] | None = None  # explicit flip label swap
    randaugment: str | None = None  # e.g. "rand-m9-mstd0.5" (GSF recipe)
    crop_size: int | None = None  # default: the backbone's input spec
    resize_size: int | None = None  # default: the backbone's input spec
    num_workers: int = 2  # data loader processes per training process (0: load in-process)


@dataclass
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"  # SGD as in the papers; AdamW for training from scratch
    lr: float = 0.01  # learning rate for a global batch of `lr_batch` clips
    lr_batch: int = 32  # lr scales linearly with (global batch / lr_batch)
    momentum: float = 0.9  # SGD momentum (AdamW uses betas 0.9, 0.999)
    weight_decay: float = 5e-4  # L2 for SGD, decoupled for AdamW
    warmup_epochs: float = 10.0  # linear warm-up length, then cosine decay to min_lr
    warmup_factor: float = 0.1  # warm-up starts at warmup_factor * lr
    warmup_shape: Literal["linear", "exponential"] = "linear"  # exponential: stays low for longer
    min_lr: float = 0.0  # cosine ends here
    clip_grad_norm: float = 20.0  # 0 disables
    bias_lr_mult: float = 2.0  # TSN policy: biases learn twice as fast...
    bias_decay_mult: float = 0.0  # ...without weight decay
    bn_decay_mult: float = 0.0  # BN scale/shift: no weight decay
    head_lr_mult: float = 1.0  # the new classifier (5 in TSN's fine-tuning option)


@dataclass
class TrainConfig:
    epochs: int = 60  # training length; the cosine schedule ends here
    batch_size: int = 8  # clips per process per step
    accumulate: int = 1  # gradient accumulation steps
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16/fp16 on GPU, else fp32
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    channels_last: bool = True  # channels_last memory format (same results, faster convolutions)
    compile: bool = False  # run the training forward through torch.compile (benchmarks/compile.py)
    keep_freed_memory: bool = True  # glibc keeps freed memory (mallopt): no page faults per step
    eval_every: int = 1  # validate every k epochs (0: never)
    checkpoint_every: int = 0  # also checkpoint every N optimiser steps (0: epochs only)
    keep_checkpoints: int = 2  # step/epoch checkpoints kept besides last and best
    resume: str = "auto"  # auto (latest in out_dir), never, or a checkpoint path
    max_steps: int = 0  # stop after this many optimiser steps (0: no limit; smoke runs)
    log_every: int = 10  # steps between metric lines
    tensorboard: bool = True  # also write TensorBoard event files in the run folder
    best_metric: str = "top1"  # validation metric that picks best.pt (top1, top5, ...)


@dataclass
class EvalConfig:
    split: str = ""  # default: data.val_split
    num_clips: int = 1  # clips per video at test time, scores averaged
    num_crops: int = 1  # spatial crops per clip: 1, 3 or 10
    batch_size: int = 4  # videos per evaluation batch
    precision: Literal["auto", "fp32", "bf16", "fp16"] | None = None  # unset: train.precision


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)  # the network
    data: DataConfig = field(default_factory=DataConfig)  # the dataset and its augmentation
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimiser and lr schedule
    train: TrainConfig = field(default_factory=TrainConfig)  # the training loop
    eval: EvalConfig = field(default_factory=EvalConfig)  # test-time views (`gateshift evaluate`)
    out_dir: str = "runs/${model.name}"  # run folder: checkpoints, logs, the resolved config
    seed: int = 0  # seed of every random generator (weights init, sampling, augmentation)


class ConfigError(ValueError):
    """A bad configuration value; the message names the key."""


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), *, checked: bool = True
) -> Config:
    """Defaults <- YAML file <- ``key=value`` overrides, validated; returns a typed Config.

    ``checked=False`` skips :func:`validate` (types are still enforced): to show a config that is
    not complete yet, such as a recipe without ``data.root``.
    """
    where = ""
    try:
        cfg: DictConfig = OmegaConf.structured(Config)
        if path is not None:
            path = Path(path)
            where = f" in {path}"
            cfg = OmegaConf.merge(cfg, _read_yaml(path))  # type: ignore[assignment]
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"overrides must look like key=value, got {bad[0]!r}")
        where = " in the key=value overrides" if overrides else where
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))  # type: ignore[assignment]
        where = f" in {path}" if path else ""
        OmegaConf.resolve(cfg)
        config: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except OmegaConfBaseException as err:
        raise ConfigError(f"config error{where}: {_first_lines(err)}") from None
    if checked:
        validate(config)
    return config


def _read_yaml(path: Path) -> DictConfig:
    """The YAML mapping in ``path``; one clear error for a missing file, bad YAML or a file
    that is not a mapping of sections."""
    import yaml  # type: ignore[import-untyped]

    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        loaded = OmegaConf.load(path)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(err, "problem", None) or _first_lines(err)
        raise ConfigError(f"{path} is not valid YAML: {at}{what}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (YAML) file") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(
            f"{path}: a config is a mapping of sections (model:, data:, optim:, ...), "
            f"got a {type(loaded).__name__.removesuffix('Config').lower() or 'value'}"
        )
    return loaded


def _first_lines(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    key = next((ln for ln in lines if ln.startswith("full_key:")), "")
    return f"{lines[0]} ({key})" if key else lines[0]


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def validate(cfg: Config) -> None:
    """Checks beyond types; each error names the key."""
    _require(cfg.model.num_segments >= 1, "model.num_segments", "must be >= 1")
    _require(0.0 <= cfg.model.dropout < 1.0, "model.dropout", "must be in [0, 1)")
    _require(cfg.data.format in FORMATS, "data.format",
             f"{cfg.data.format!r} is not one of {', '.join(FORMATS)}")  # fmt: skip
    _require(bool(cfg.data.root), "data.root", "is required (the dataset root folder)")
    _require(cfg.data.num_workers >= 0, "data.num_workers", "must be >= 0")
    _require(all(0 < s <= 1 for s in cfg.data.scales) and bool(cfg.data.scales),
             "data.scales", "must be fractions in (0, 1]")  # fmt: skip
    _require(cfg.optim.lr > 0, "optim.lr", "must be positive")
    _require(cfg.optim.lr_batch >= 1, "optim.lr_batch", "must be >= 1")
    _require(cfg.optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
    _require(0 < cfg.optim.warmup_factor <= 1, "optim.warmup_factor", "must be in (0, 1]")
    _require(cfg.optim.warmup_epochs >= 0, "optim.warmup_epochs", "must be >= 0")
    _require(cfg.train.epochs >= 1, "train.epochs", "must be >= 1")
    _require(cfg.train.batch_size >= 1, "train.batch_size", "must be >= 1")
    _require(cfg.train.accumulate >= 1, "train.accumulate", "must be >= 1")
    _require(cfg.train.max_steps >= 0, "train.max_steps", "must be >= 0")
    _require(cfg.eval.num_crops in (1, 3, 10), "eval.num_crops", "must be 1, 3 or 10")
    _require(cfg.eval.num_clips >= 1, "eval.num_clips", "must be >= 1")
    _require(bool(cfg.out_dir), "out_dir", "is required")


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: Config) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg))  # type: ignore[return-value]


def from_dict(data: dict[str, Any]) -> Config:
    """A Config from a saved dict (e.g. a checkpoint's resolved config), validated."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(data))
        config: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except OmegaConfBaseException as err:
        raise ConfigError(f"saved config is invalid: {_first_lines(err)}") from None
    validate(config)
    return config
