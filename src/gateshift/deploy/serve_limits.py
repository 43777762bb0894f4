"""What ``gateshift serve`` accepts: an upload streamed to disk under a size limit, then proven
to be a video of at most so many seconds by decoding it.

**Size, while streaming.** Starlette's own form parsing (``UploadFile``) reads the whole body
before the endpoint runs and spools it to the system's temporary folder, so a limit checked
afterwards comes too late and the bytes land outside the request's folder. Here the request body
is fed chunk by chunk to python-multipart's streaming parser (the one Starlette uses), and the
``video`` part is written straight into a file in the request's own temporary folder, counting
bytes: the first byte past the limit stops reading with 413. A ``Content-Length`` already over
the limit is refused before reading anything.

**Video, by decoding.** The file name and the declared content type are ignored: the saved bytes
must open in FFmpeg (PyAV), hold a video stream that is not a still image (FFmpeg's image
demuxers read a PNG or JPEG as a one-frame "video"), and decode a first frame; otherwise 415.
Its duration (frames / frame rate, as the data pipeline counts them) over ``max_seconds`` is 422.

Every refusal is an :class:`UploadError` carrying the HTTP status and one line that says what
was wrong, shown as ``{"error": ...}`` by the API and in the page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FIELD = "video"  # the multipart field holding the video
MB = 1_000_000
FORM_OVERHEAD = 64 * 1024  # bytes a form may carry beyond the video: boundaries, headers


class UploadError(Exception):
    """A refused upload: ``status`` (4xx) and a message for the person who sent it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_bytes: int  # of the video part
    max_seconds: float | None  # of the video's duration (None: no limit)

    @classmethod
    def from_options(cls, max_mb: float, max_seconds: float | None) -> Limits:
        if max_mb <= 0:
            raise ValueError(f"--max-mb must be > 0, got {max_mb}")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError(f"--max-seconds must be > 0, got {max_seconds}")
        return cls(int(max_mb * MB), max_seconds)

    def too_large(self) -> UploadError:
        return UploadError(413, f"the video is larger than the limit of {_mb(self.max_bytes)}")


def _mb(size: int) -> str:
    return f"{size / MB:g} MB"


@dataclass(frozen=True)
class Upload:
    path: Path  # in the request's temporary folder
    filename: str  # the name the client gave, without folders ("upload" when none)
    size: int


class _VideoPart:
    """python-multipart callbacks: the ``video`` part goes to ``path``, other parts are
    dropped; at most ``max_bytes`` are written."""

    def __init__(self, path: Path, max_bytes: int, too_large: UploadError) -> None:
        self.path, self.max_bytes, self.too_large = path, max_bytes, too_large
        self.file: IO[bytes] | None = None
        self.size = 0
        self.filename: str | None = None
        self.found = False
        self._header = b""
        self._value = b""
        self._disposition = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._field,
            "on_header_value": self._value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._disposition = b""

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _value_data(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == FIELD.encode() and not self.found:
            self.found = True
            name = options.get(b"filename", b"").decode("utf-8", "replace")
            self.filename = Path(name.replace("\\", "/")).name or "upload"
            self.file = self.path.open("wb")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.file is None:
            return
        self.size += end - start
        if self.size > self.max_bytes:
            raise self.too_large
        self.file.write(data[start:end])

    def _end(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def close(self) -> None:
        self._end()


async def receive_upload(
    headers: dict[str, str], body: AsyncIterator[bytes], folder: Path, limits: Limits
) -> Upload:
    """Stream the ``video`` field of a multipart ``body`` into ``folder``; 4xx on bad forms,
    413 past ``limits.max_bytes`` (before writing the byte over)."""
    kind, options = parse_options_header(headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(400, f'send the video as multipart/form-data in the field "{FIELD}"')
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits.max_bytes + FORM_OVERHEAD:
        raise limits.too_large()
    part = _VideoPart(folder / "upload", limits.max_bytes, limits.too_large())
    parser = MultipartParser(boundary, part.callbacks())
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as err:  # python-multipart's parse errors: a damaged form
        raise UploadError(400, f"cannot parse the form: {err}") from err
    finally:
        part.close()
    if not part.found:
        raise UploadError(422, f'no "{FIELD}" field in the form: send the video in it')
    if part.size == 0:
        raise UploadError(415, "the uploaded file is empty, not a video")
    return Upload(part.path, part.filename or "upload", part.size)


@dataclass(frozen=True)
class VideoFacts:
    num_frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    format: str  # FFmpeg's container name

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _is_image(format_name: str) -> bool:
    return format_name == "image2" or format_name.endswith("_pipe")


def probe_video(path: Path, limits: Limits) -> VideoFacts:
    """Decode enough of ``path`` to know it is a video, and how long; 415 / 422 otherwise."""
    import av

    from gateshift.data.records import BadVideoError
    from gateshift.data.stream import VideoStream

    try:
        with av.open(str(path)) as container:
            name = container.format.name
            if not container.streams.video:
                raise UploadError(415, f"not a video: the {name} file has no video stream")
            if _is_image(name):
                raise UploadError(415, f"not a video: a still image ({name})")
            if next(container.decode(container.streams.video[0]), None) is None:
                raise UploadError(415, "not a video: no frame decodes")
        meta = VideoStream(path).meta
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise UploadError(415, f"not a video: FFmpeg cannot read it ({reason})") from err
    except BadVideoError as err:
        raise UploadError(415, f"not a readable video: {err.reason}") from err
    if not meta.fps:
        raise UploadError(415, "not a readable video: its frame rate is unknown")
    facts = VideoFacts(
        meta.num_frames, meta.fps, meta.num_frames / meta.fps, meta.width, meta.height, name
    )
    if limits.max_seconds is not None and facts.duration_s > limits.max_seconds:
        raise UploadError(
            422,
            f"the video is {facts.duration_s:.1f} s long, over the limit of "
            f"{limits.max_seconds:g} s",
        )
    return facts
