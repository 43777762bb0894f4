"""The model behind ``gateshift serve``: loaded once at start-up, shared by every request.

The network is built the way ``gateshift predict`` builds it
(:func:`~gateshift.deploy.predict.load_network`: the run's views, precision and memory format)
and each upload is scored by :func:`~gateshift.deploy.predict.predict_video`, so the API's
answer is ``predict --json``'s for that file. Explanations reuse the same loaded bundle
(:func:`~gateshift.deploy.explain.explain_bundle`) and timelines a
:class:`~gateshift.deploy.timeline.LoadedRun` around the same network.

**One forward at a time.** Requests are decoded and preprocessed in parallel worker threads,
but every pass of the model holds :attr:`ServedModel.lock`: torch already spreads one forward
over all cores (two forwards on two cores made torch's spinning threads stall, see
:func:`~gateshift.deploy.timeline.split_threads`), and ``explain`` captures gates and features
with hooks on the model itself, which must not see another request's clips.

**Timeline window.** The run's typical training clip (the bundle's record, else a probe of its
training split) is found once at start-up, not per request; a video at least
:data:`LONG_WINDOWS` such windows long gets a timeline. A run with neither gets none, and the
reason is reported. A timeline's decoder runs in a thread of its own and its windows go through
the same locked network, a batch at a time, so other requests are served in between.
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from gateshift.deploy.explain import explain_bundle
from gateshift.deploy.gates import gated_modules
from gateshift.deploy.predict import load_network, predict_video
from gateshift.deploy.timeline import LoadedRun, default_scale, timeline, training_clip
from gateshift.inference.bundle import Bundle, load_bundle_config
from gateshift.inference.network import Network
from gateshift.inference.preprocess import VideoViews

log = logging.getLogger(__name__)

LONG_WINDOWS = 2.0  # a video this many timeline windows long (or longer) gets a timeline


@dataclass(frozen=True)
class LockedNetwork:
    """``network`` called under ``lock``: one forward at a time, whoever calls."""

    network: Network
    lock: threading.Lock

    def __call__(self, clips: Tensor, /) -> Tensor:
        with self.lock:
            return self.network(clips)


class ServedModel:
    """A run loaded for serving: :meth:`predict` and :meth:`analyze` one video file."""

    def __init__(self, run: str | Path, *, device: str = "cpu") -> None:
        network, source, views = load_network(run, backend="torch", device=device)
        assert isinstance(source, Bundle)  # the torch backend preprocesses from the bundle
        self.bundle = source
        self.lock = threading.Lock()
        self.network = LockedNetwork(network, self.lock)
        self.views = views
        self.prepare = VideoViews(source, views)
        cfg = load_bundle_config(run)
        self.loaded = LoadedRun(source, cfg, self.network, self.prepare)
        self.timeline_note: str | None = None
        clip = training_clip(source, cfg)
        if clip is not None:  # probed once here; timeline() reads it from the bundle's record
            source.meta["clips"] = clip.to_dict()
        elif source.sampling.get("mode") != "dense":  # dense: a clip's span, always known
            self.timeline_note = (
                "no timeline: the run records no training clip length and its training data "
                f"({cfg.data.root}) cannot be read"
            )
        self.has_gates = bool(gated_modules(source.model))

    def describe(self) -> dict[str, Any]:
        """What ``GET /api/model`` shows."""
        model = self.bundle.model
        return {
            "name": model.name,
            "temporal": model.temporal,
            "num_segments": model.num_segments,
            "classes": self.bundle.classes,
            "input_spec": self.bundle.input_spec.to_dict(),
            "sampling": self.bundle.sampling,
            "views": asdict(self.views),
            "has_gates": self.has_gates,
            "timeline": self.timeline_note or "for videos of at least two training clips",
        }

    def predict(self, path: Path, name: str, *, top_k: int = 5) -> dict[str, Any]:
        """``predict --json``'s entry for the video at ``path``, called ``name``."""
        prediction = predict_video(self.network, self.prepare, path, top_k=top_k, name=name)
        return asdict(prediction)

    def analyze(
        self,
        path: Path,
        name: str,
        folder: Path,
        *,
        duration_s: float,
        fps: float,
        target: str | None = None,
    ) -> dict[str, Any]:
        """Explanation (gate maps, Grad-CAM of the top-1 and of ``target``, routing, as PNG data
        URLs, with explain.json's content) and, for a long video, its timeline; the pictures
        are written to ``folder`` first."""
        report = explain_bundle(
            self.bundle, path, folder, target=target, animation=False, lock=self.lock
        )
        images = {
            kind: "data:image/png;base64," + base64.b64encode((folder / file).read_bytes()).decode()
            for kind, file in report.pop("files").items()
        }
        report |= {"video": name, "images": images}
        return {"explain": report, **self._timeline(path, name, duration_s, fps)}

    def _timeline(self, path: Path, name: str, duration_s: float, fps: float) -> dict[str, Any]:
        if self.timeline_note is not None:
            return {"timeline": None, "timeline_note": self.timeline_note}
        window = default_scale(self.bundle, self.loaded.cfg, fps, None, None).window_s
        if duration_s < LONG_WINDOWS * window:
            note = f"no timeline: the video is shorter than {LONG_WINDOWS:g} x {window:.2f} s"
            return {"timeline": None, "timeline_note": note}
        result = timeline(self.loaded, path).to_dict()
        return {"timeline": result | {"video": name}, "timeline_note": None}
