"""GenICam cameras through Harvesters and a GenTL producer (``.cti``), e.g. the bundled ``viky.cti``.

Behaviour the station relies on, and the Harvesters/GenTL facts behind it:

- ``grab`` always fetches with a timeout (a fetch without one can hang forever) and
  copies the pixels out of the driver buffer before it is re-queued.
- Acquisition runs without Harvesters' background thread: that thread silently drops
  the older buffer when its queue is full. Fetching on the caller's thread leaves loss
  to the producer, and the lost frames show as ``frame_id`` gaps.
- A GenTL producer can be opened only once per process (a second open answers
  "resource in use" and enumerates no devices), so every camera on one ``.cti`` shares
  one :class:`~harvesters.core.Harvester`; it is reset when its last user closes.
- Any error from a fetch other than a timeout means the device is lost: ``CameraFault``.
  ``recover()`` then re-opens everything (device list, acquirer, features, start).
- A device runs free, so a batch size (``items``) is the camera's to keep: it numbers the
  frames of a batch 1, 2, 3... from the first one it fetched (device frame id gaps kept, a
  recovery continuing the count) and delivers nothing after item ``items``; ``finished`` then
  ends the batch like a line source's.
- GenTL simulators (``viky.cti``) show a test pattern, not a product: :attr:`test_pattern` says so.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from genicam import genapi
from harvesters.core import Callback, Harvester, ParameterKey, ParameterSet
from pydantic import ValidationError

from inspector.camera.base import Camera, CameraError, CameraFault, Frame
from inspector.config.camera import VIKY_PLACEHOLDER, CameraConfig, FeatureValue, resolve_cti, viky_cti_path
from inspector.config.loader import format_validation_error

_log = logging.getLogger(__name__)
# Harvesters logs tracebacks to its own stderr handler by default; route them into ours.
_HARVESTERS_LOG = logging.getLogger("inspector.camera.harvesters")

# GenTL event wait per poll inside Harvesters' fetch loop. It bounds how far a fetch may
# overrun its timeout, not the latency (a buffer ends the wait at once); Harvesters'
# default of 1 ms costs a thousand wake-ups a second per camera.
_EVENT_WAIT_MS = 10

# Bytes per pixel of the 8-bit formats we convert; anything else is refused at open.
_CHANNELS: dict[str, int] = {"Mono8": 1, "RGB8": 3, "BGR8": 3, "RGBa8": 4, "BGRa8": 4}
_TO_BGR: dict[str, int | None] = {
    "Mono8": cv2.COLOR_GRAY2BGR,
    "RGB8": cv2.COLOR_RGB2BGR,
    "BGR8": None,
    "RGBa8": cv2.COLOR_RGBA2BGR,
    "BGRa8": cv2.COLOR_BGRA2BGR,
}
_TO_MONO: dict[str, int | None] = {
    "Mono8": None,
    "RGB8": cv2.COLOR_RGB2GRAY,
    "BGR8": cv2.COLOR_BGR2GRAY,
    "RGBa8": cv2.COLOR_RGBA2GRAY,
    "BGRa8": cv2.COLOR_BGRA2GRAY,
}
SUPPORTED_PIXEL_FORMATS = tuple(_CHANNELS)

# GenTL producers and devices known to stream a test pattern (simulators), by file name and by
# (vendor, model): the bundled viky.cti and its "Viky" devices.
TEST_PATTERN_PRODUCERS = frozenset({"viky.cti"})
TEST_PATTERN_DEVICES = frozenset({("Machine Vision Games Ltd.", "Viky")})


def _short(exc: BaseException) -> str:
    """GenICam messages carry a C++ file/line tail after " : "; keep the useful head."""
    text = str(exc).strip() or type(exc).__name__
    return text.split(" : ")[0]


# -- one Harvester per producer ---------------------------------------------------------
@dataclass
class _Producer:
    harvester: Any  # harvesters.core.Harvester
    users: int = 0


class _ProducerRegistry:
    """Shares one Harvester per ``.cti`` among the cameras and listings of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._producers: dict[str, _Producer] = {}

    def acquire(self, cti: Path) -> tuple[str, Any]:
        """A lease on the producer: ``(key, harvester)``; give ``key`` back to :meth:`release`."""
        key = str(cti.resolve())
        with self._lock:
            entry = self._producers.get(key)
            if entry is None:
                if not cti.is_file():
                    raise CameraError(f"GenTL producer not found: {cti}")
                harvester = Harvester(logger=_HARVESTERS_LOG)
                try:
                    harvester.add_file(key)
                    harvester.update()
                except Exception as exc:
                    _reset_harvester(harvester)
                    raise CameraError(f"cannot load GenTL producer {cti}: {_short(exc)}") from exc
                entry = self._producers[key] = _Producer(harvester)
            elif not entry.harvester.image_acquirers:
                # Re-enumerate (a device may have come back); update() would destroy the
                # acquirers of other cameras, so only while nobody acquires.
                entry.harvester.update()
            entry.users += 1
            return key, entry.harvester

    def release(self, key: str) -> None:
        with self._lock:
            entry = self._producers.get(key)
            if entry is None:
                return
            entry.users -= 1
            if entry.users <= 0:
                del self._producers[key]
                _reset_harvester(entry.harvester)

    @contextlib.contextmanager
    def lease(self, cti: Path) -> Iterator[Any]:
        key, harvester = self.acquire(cti)
        try:
            yield harvester
        finally:
            self.release(key)


_PRODUCERS = _ProducerRegistry()


def _reset_harvester(harvester: Any) -> None:
    try:
        harvester.reset()
    except Exception as exc:  # teardown must finish; the producer may be half gone
        _log.warning("GenTL producer reset failed: %s", _short(exc))


def _destroy_acquirer(harvester: Any, acquirer: Any) -> None:
    """Destroy an ImageAcquirer even when its device is gone, so nothing is left behind."""
    try:
        acquirer.destroy()
    except Exception as exc:  # a lost device fails half-way through destroy()
        _log.warning("acquirer teardown after device loss: %s", _short(exc))
    # Harvesters' finalizer holds the acquirer through a bound method, so the acquirer
    # (and its node map) would live until exit; after a failed destroy() it would also
    # run destroy() again at garbage collection and fail there (an unraisable error).
    finalizer = getattr(acquirer, "_finalizer", None)
    if finalizer is not None:
        finalizer.detach()
    with contextlib.suppress(ValueError):
        harvester.image_acquirers.remove(acquirer)


def _device_dict(info: Any) -> dict[str, str]:
    props: Mapping[str, Any] = info.property_dict

    def text(key: str) -> str:
        value = props.get(key)
        return "" if value is None else str(value)

    return {
        "serial": text("serial_number"),
        "model": text("model"),
        "vendor": text("vendor"),
        "id": text("id_"),
        "display_name": text("display_name"),
        "tl_type": text("tl_type"),
        "version": text("version"),
    }


def list_devices(cti: str | Path | None = None) -> list[dict[str, str]]:
    """The devices a GenTL producer offers (default: the bundled ``viky.cti``).

    Each entry has ``serial``, ``model``, ``vendor``, ``id`` (plus display name, transport
    layer type and version). While a camera of this process holds the producer the list
    is the last enumeration, since re-enumerating would cut that camera off.
    """
    path = viky_cti_path() if cti is None else resolve_cti(cti)
    with _PRODUCERS.lease(path) as harvester:
        return [_device_dict(info) for info in harvester.device_info_list]


def select_device(devices: Sequence[Mapping[str, str]], *, serial: str | None, model: str | None) -> int:
    """Index of the one device matching ``serial`` and/or ``model``; a clear CameraError otherwise."""
    if serial is None and model is None:
        raise CameraError("select a device by serial or model")
    matches = [
        i
        for i, d in enumerate(devices)
        if (serial is None or d["serial"] == serial) and (model is None or d["model"] == model)
    ]
    if len(matches) == 1:
        return matches[0]
    wanted = " and ".join(f"{k} {v!r}" for k, v in (("serial", serial), ("model", model)) if v is not None)
    if not matches:
        available = ", ".join(f"serial {d['serial']!r} ({d['vendor']} {d['model']})" for d in devices) or "none"
        raise CameraError(f"no GenICam device with {wanted}; available: {available}")
    serials = ", ".join(repr(devices[i]["serial"]) for i in matches)
    raise CameraError(f"{len(matches)} devices match {wanted} (serials {serials}); add the serial to choose one")


# -- pixels -------------------------------------------------------------------------------
def convert_pixels(data: np.ndarray, width: int, height: int, pixel_format: str, out: str) -> np.ndarray:
    """An owned ``uint8`` image in ``out`` (``mono8`` or ``bgr8``) from a driver buffer view."""
    channels = _CHANNELS.get(pixel_format)
    if channels is None:
        raise CameraError(f"pixel format {pixel_format!r} is not supported (use one of {SUPPORTED_PIXEL_FORMATS})")
    need = width * height * channels
    flat = np.asarray(data, dtype=np.uint8).reshape(-1)
    if flat.size < need:
        raise ValueError(f"buffer holds {flat.size} bytes, a {width}x{height} {pixel_format} image needs {need}")
    view = flat[:need].reshape((height, width) if channels == 1 else (height, width, channels))
    code = (_TO_MONO if out == "mono8" else _TO_BGR)[pixel_format]
    # cvtColor writes a new array; without a conversion copy() does: either way the
    # result no longer points into the buffer that goes back to the producer.
    image = view.copy() if code is None else cv2.cvtColor(view, code)
    return np.ascontiguousarray(image)


class _IncompleteCounter(Callback):  # type: ignore[misc]  # harvesters is untyped
    """Harvesters re-queues incomplete buffers itself and only tells a callback."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, context: object | None = None) -> None:
        self.count += 1


# -- node map -----------------------------------------------------------------------------
def _node_kind(node: Any) -> str:
    for kind, cls in (
        ("integer", genapi.IInteger),
        ("float", genapi.IFloat),
        ("boolean", genapi.IBoolean),
        ("enumeration", genapi.IEnumeration),
        ("string", genapi.IString),
        ("command", genapi.ICommand),
    ):
        if isinstance(node, cls):
            return kind
    return "other"


def _read_value(node: Any, kind: str) -> FeatureValue:
    value = node.value
    if kind == "integer":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "boolean":
        return bool(value)
    return str(value)


def _same(expected: FeatureValue, actual: FeatureValue, kind: str) -> bool:
    if kind == "float":
        assert isinstance(expected, int | float) and isinstance(actual, float)
        return math.isclose(float(expected), actual, rel_tol=1e-6, abs_tol=1e-9)
    return expected == actual


def _write_checked(node: Any, name: str, kind: str, value: FeatureValue) -> FeatureValue:
    """Write one feature and return what the device reads back (CameraError on any mismatch)."""
    is_bool = isinstance(value, bool)
    if kind in ("command", "other"):
        # Commands have no value to read back, so they cannot be verified like settings.
        raise CameraError(
            f"feature {name!r} is not a value node ({type(node).__name__}); "
            "only integer, float, boolean, enumeration and string features can be set"
        )
    accepted = {
        "integer": isinstance(value, int) and not is_bool,
        "float": isinstance(value, int | float) and not is_bool,
        "boolean": is_bool,
        "enumeration": isinstance(value, str),
        "string": isinstance(value, str),
    }[kind]
    if not accepted:
        hint = " (quote On/Off/Yes/No in YAML, or they become booleans)" if kind == "enumeration" and is_bool else ""
        article = "an" if kind[0] in "aeiou" else "a"
        raise CameraError(f"feature {name!r} is {article} {kind}: give {article} {kind} value, not {value!r}{hint}")
    if not genapi.is_writable(node):
        raise CameraError(f"feature {name!r} is not writable now (read-only or locked)")
    try:
        node.value = float(value) if kind == "float" else value
        actual = _read_value(node, kind)
    except Exception as exc:
        raise CameraError(f"feature {name!r}: cannot write {value!r}: {_short(exc)}") from exc
    if not _same(value, actual, kind):
        raise CameraError(f"feature {name!r}: wrote {value!r} but the device reads back {actual!r}")
    return actual


# -- the camera ---------------------------------------------------------------------------
class GenICamCamera(Camera):
    """A GenTL device opened through Harvesters, configured from a :class:`CameraConfig`."""

    kind = "genicam"

    def __init__(
        self,
        config: CameraConfig | None = None,
        *,
        cti: str | Path | None = None,
        serial: str | None = None,
        model: str | None = None,
        features: Mapping[str, FeatureValue] | None = None,
        optional_features: Sequence[str] = (),
        pixel_format_out: Literal["mono8", "bgr8"] = "bgr8",
        num_buffers: int = 3,
        items: int | None = None,
    ) -> None:
        """``items``: stop after that many frames (a batch); ``None``: until stopped."""
        super().__init__()
        if items is not None and items < 1:
            raise CameraError(f"items must be at least 1, got {items}")
        self.items = items
        self._batch_first: int | None = None  # device frame id of the first frame since the last start
        self._batch_base = 0  # items of this batch before that start (a recovery continues the count)
        self._batch_last = 0  # the last item number delivered
        if config is None:
            try:
                config = CameraConfig(
                    schema_version=1,
                    name=f"genicam-{serial or model}",
                    kind="genicam",
                    cti=VIKY_PLACEHOLDER if cti is None else str(cti),
                    serial=serial,
                    model=model,
                    features=dict(features or {}),
                    optional_features=list(optional_features),
                    pixel_format_out=pixel_format_out,
                    num_buffers=num_buffers,
                )
            except ValidationError as exc:
                raise CameraError(f"camera settings: {format_validation_error(exc)}") from None
        elif cti is not None or serial is not None or model is not None or features is not None:
            raise CameraError("give either a CameraConfig or cti/serial/model/features, not both")
        if config.kind != "genicam":
            raise CameraError(f"camera config {config.name!r} is kind {config.kind!r}, not genicam")
        self.config = config
        self._cti = config.cti_path()
        self._harvester: Any = None
        self._producer_key = ""
        self._acquirer: Any = None
        self._incomplete = _IncompleteCounter()
        self._device: dict[str, str] = {}
        self._settings: dict[str, FeatureValue] = {}
        self._skipped: list[str] = []
        self._image: dict[str, Any] = {}

    # -- identity -----------------------------------------------------------------------
    @property
    def serial(self) -> str:
        return self._device.get("serial") or self.config.serial or self.config.model or self.config.name

    @property
    def finished(self) -> bool:
        return self.items is not None and self._batch_last >= self.items

    @property
    def test_pattern(self) -> str | None:
        if self._device:
            vendor, model = self._device.get("vendor", ""), self._device.get("model", "")
            if (vendor, model) in TEST_PATTERN_DEVICES or self._cti.name.lower() in TEST_PATTERN_PRODUCERS:
                return f"{vendor} {model} from the GenTL producer {self._cti.name}".strip()
            return None
        if self._cti.name.lower() in TEST_PATTERN_PRODUCERS:
            return f"the GenTL simulator {self._cti.name}"
        return None

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            name=self.config.name,
            test_pattern=self.test_pattern,
            items=self.items,
            model=self._device.get("model", self.config.model or ""),
            vendor=self._device.get("vendor", ""),
            device_id=self._device.get("id", ""),
            cti=str(self._cti),
            settings=dict(self._settings),
            skipped_features=list(self._skipped),
            image=dict(self._image),
            pixel_format_out=self.config.pixel_format_out,
            num_buffers=self.config.num_buffers,
        )
        return d

    # -- driver hooks -------------------------------------------------------------------
    def _do_open(self) -> None:
        self._producer_key, harvester = _PRODUCERS.acquire(self._cti)
        self._harvester = harvester
        try:
            devices = [_device_dict(info) for info in harvester.device_info_list]
            if not devices:
                # Harvesters only logs a producer that fails to load; say what it can mean.
                raise CameraError(
                    f"GenTL producer {self._cti} offers no devices (none attached, not a valid producer, "
                    "or the producer is already open elsewhere in this process)"
                )
            index = select_device(devices, serial=self.config.serial, model=self.config.model)
            self._acquirer = self._create_acquirer(harvester, index, devices[index])
            self._device = devices[index]
            self._configure(self._acquirer.remote_device.node_map)
        except BaseException:
            self._teardown()
            raise

    def _create_acquirer(self, harvester: Any, index: int, device: Mapping[str, str]) -> Any:
        params = ParameterSet(
            {
                ParameterKey.NUM_BUFFERS_FOR_FETCH_CALL: self.config.num_buffers,
                ParameterKey.TIMEOUT_PERIOD_ON_UPDATE_EVENT_DATA_CALL: _EVENT_WAIT_MS,
            }
        )
        # Harvesters installs a SIGINT handler that destroys the acquirer and swallows
        # Ctrl-C; the station owns shutdown, so the previous handler is put back.
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT) if in_main else None
        try:
            acquirer = harvester.create(index, config=params)
        except Exception as exc:
            raise CameraError(
                f"cannot open GenICam device serial {device['serial']!r} ({device['model']}): {_short(exc)}"
            ) from exc
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        self._incomplete = _IncompleteCounter()
        acquirer.add_callback(acquirer.Events.INCOMPLETE_BUFFER, self._incomplete)
        return acquirer

    def _configure(self, node_map: Any) -> None:
        """Apply the features in order, reading each back; then check the image format."""
        settings: dict[str, FeatureValue] = {}
        skipped: list[str] = []
        for name, value in self.config.features.items():
            node = self._find_node(node_map, name)
            if node is None:
                if name in self.config.optional_features:
                    _log.info("camera %s: optional feature %s absent, skipped", self.serial, name)
                    skipped.append(name)
                    continue
                raise CameraError(
                    f"camera {self.serial}: the device has no feature {name!r} "
                    f"(list it in optional_features if it may be absent)"
                )
            settings[name] = _write_checked(node, name, _node_kind(node), value)
        image: dict[str, Any] = {}
        for key, name in (("width", "Width"), ("height", "Height"), ("pixel_format", "PixelFormat")):
            node = self._find_node(node_map, name)
            if node is None or not genapi.is_readable(node):
                raise CameraError(f"camera {self.serial}: the device has no readable {name}")
            image[key] = _read_value(node, _node_kind(node))
        if image["pixel_format"] not in _CHANNELS:
            raise CameraError(
                f"camera {self.serial}: PixelFormat {image['pixel_format']!r} is not supported; "
                f"set one of {SUPPORTED_PIXEL_FORMATS} in features"
            )
        self._settings, self._skipped, self._image = settings, skipped, image

    @staticmethod
    def _find_node(node_map: Any, name: str) -> Any:
        """The node, or None when the device lacks it (absent or not implemented)."""
        try:
            node = node_map.get_node(name)
        except genapi.LogicalErrorException:
            return None
        return node if genapi.is_implemented(node) else None

    def _do_start(self) -> None:
        self._batch_first, self._batch_base, self._batch_last = None, 0, 0
        acquirer = self._require_acquirer()
        try:
            # No run_as_thread: Harvesters' thread drops buffers silently (see module doc).
            acquirer.start()
        except Exception as exc:
            raise CameraError(f"camera {self.serial}: cannot start acquisition: {_short(exc)}") from exc

    def _do_grab(self, timeout_s: float) -> Frame | None:
        if self.finished:
            return None
        acquirer = self._acquirer
        if acquirer is None or not acquirer.is_valid():
            raise CameraFault(f"camera {self.serial}: acquirer lost")
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            seen = self._incomplete.count
            try:
                buffer = acquirer.try_fetch(timeout=remaining)
            except Exception as exc:  # try_fetch reports a timeout as None: anything raised is a lost device
                raise CameraFault(f"camera {self.serial}: device lost ({_short(exc)})") from exc
            if buffer is None:
                if self._incomplete.count > seen:
                    self.stats.incomplete += self._incomplete.count - seen
                    continue
                return None
            t_acquired = time.monotonic()
            try:
                with buffer:  # exiting re-queues the buffer: copy before that
                    frame_id = int(buffer.module.frame_id)
                    component = buffer.payload.components[0]
                    image = convert_pixels(
                        component.data,
                        int(component.width),
                        int(component.height),
                        str(component.data_format),
                        self.config.pixel_format_out,
                    )
            except CameraError:
                raise
            except ValueError as exc:  # short payload: as good as incomplete
                _log.warning("camera %s: %s; frame skipped", self.serial, exc)
                self.stats.incomplete += 1
                continue
            except Exception as exc:
                raise CameraFault(f"camera {self.serial}: device lost while reading a buffer ({_short(exc)})") from exc
            if self.items is not None:
                frame_id = self._batch_number(frame_id)
                if frame_id > self.items:  # frames lost across the batch's end
                    self._batch_last = self.items
                    return None
                self._batch_last = frame_id
            return Frame(
                item_id=frame_id,
                frame_id=frame_id,
                t_acquired=t_acquired,
                image=image,
                camera_serial=self.serial,
            )

    def _do_stop(self) -> None:
        acquirer = self._acquirer
        if acquirer is None or not acquirer.is_valid():
            return
        try:
            acquirer.stop()
        except Exception as exc:  # a lost device cannot stop; close/recover clean up
            _log.warning("camera %s: stop failed: %s", self.serial, _short(exc))

    def _do_close(self) -> None:
        self._teardown()

    def _do_recover(self) -> None:
        """Full re-open: drop acquirer and producer, enumerate again, re-apply features, start."""
        delivered = self._batch_last
        self._teardown()
        self._do_open()
        try:
            self._do_start()
        except BaseException:
            self._teardown()
            raise
        self._batch_base = self._batch_last = delivered  # the batch goes on where it stopped

    def _batch_number(self, device_frame_id: int) -> int:
        """Item number within the batch: 1 for the first frame fetched, device id gaps kept."""
        if self._batch_first is None:
            self._batch_first = device_frame_id
        return self._batch_base + max(1, device_frame_id - self._batch_first + 1)

    # -- helpers ------------------------------------------------------------------------
    def _require_acquirer(self) -> Any:
        if self._acquirer is None:
            raise CameraError(f"camera {self.serial} is not open")
        return self._acquirer

    def _teardown(self) -> None:
        """Release acquirer and producer lease; safe to call at any point, never raises."""
        acquirer, harvester = self._acquirer, self._harvester
        self._acquirer = self._harvester = None
        if acquirer is not None:
            _destroy_acquirer(harvester, acquirer)
        if harvester is not None:
            _PRODUCERS.release(self._producer_key)


__all__ = ["SUPPORTED_PIXEL_FORMATS", "GenICamCamera", "convert_pixels", "list_devices", "select_device"]
