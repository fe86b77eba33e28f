"""``inspector cameras list | grab``: find GenICam devices and check one end to end.

``grab`` opens a camera exactly as the station does (same config, same feature writes
and read-back), saves N frames as PNG and prints a JSON summary with the measured frame
rate and the loss counters. Bad input raises ``ValueError`` with a clear message.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import cv2
from pydantic import ValidationError

from inspector.camera.base import CameraError, CameraFault
from inspector.config.camera import VIKY_PLACEHOLDER, CameraConfig, load_camera_config
from inspector.config.loader import format_validation_error

# A camera that delivers nothing for this many grab timeouts in a row is given up on.
MAX_CONSECUTIVE_TIMEOUTS = 3
# Fast PNG compression: writing must keep up with acquisition or frames are lost.
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]


def cmd_cameras_list(args: argparse.Namespace) -> int:
    """Print the devices a GenTL producer offers: a table, or JSON lines with ``--json``."""
    from inspector.camera.genicam import list_devices

    try:
        devices = list_devices(args.cti)
    except CameraError as exc:
        raise ValueError(str(exc)) from None
    if args.json:
        for d in devices:
            print(json.dumps(d))
        return 0
    if not devices:
        print(f"no devices found via {args.cti or VIKY_PLACEHOLDER}")
        return 0
    print(f"{'serial':12} {'model':16} {'vendor':28} id")
    for d in devices:
        print(f"{d['serial']:12} {d['model']:16} {d['vendor']:28} {d['id']}")
    return 0


def grab_config(args: argparse.Namespace) -> CameraConfig:
    """The camera config for ``grab``: ``--config`` if given, with ``--cti/--serial/--model`` overriding it."""
    overrides = {k: getattr(args, k) for k in ("cti", "serial", "model") if getattr(args, k, None) is not None}
    if getattr(args, "pixel_format", None) is not None:
        overrides["pixel_format_out"] = args.pixel_format
    if getattr(args, "config", None) is not None:
        base = load_camera_config(args.config)
        if base.kind != "genicam":
            raise ValueError(f"{args.config}: kind {base.kind!r}; cameras grab needs a genicam config")
        if "serial" in overrides and "model" not in overrides:
            overrides["model"] = None  # a serial on the command line names the device by itself
        data: dict[str, Any] = {**base.model_dump(), **overrides}
    else:
        data = {"schema_version": 1, "name": "cli-grab", "kind": "genicam", "cti": VIKY_PLACEHOLDER, **overrides}
    try:
        return CameraConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"camera settings: {format_validation_error(exc)}") from None


def _empty_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: must be a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)


def grab_frames(config: CameraConfig, frames: int, out: Path, timeout_s: float | None = None) -> dict[str, Any]:
    """Acquire ``frames`` frames into ``out`` (PNG) and return the summary."""
    from inspector.camera.genicam import GenICamCamera

    if frames < 1:
        raise ValueError("--frames must be at least 1")
    timeout = timeout_s if timeout_s is not None else config.fetch_timeout_ms / 1000.0
    if timeout <= 0:
        raise ValueError("--timeout must be positive")
    _empty_out_dir(out)
    camera = GenICamCamera(config)
    frame_ids: list[int] = []
    stamps: list[float] = []
    fault = ""
    try:
        camera.open()
    except CameraError as exc:
        raise ValueError(str(exc)) from None
    t_start = time.monotonic()
    try:
        camera.start()
        idle = 0
        while len(frame_ids) < frames and idle < MAX_CONSECUTIVE_TIMEOUTS:
            try:
                frame = camera.grab(timeout_s=timeout)
            except CameraFault as exc:
                fault = str(exc)
                break
            if frame is None:
                idle += 1
                continue
            idle = 0
            path = out / f"frame_{len(frame_ids):05d}.png"
            if not cv2.imwrite(str(path), frame.image, _PNG_PARAMS):
                raise ValueError(f"cannot write {path}")
            frame_ids.append(frame.frame_id)
            stamps.append(frame.t_acquired)
        elapsed = time.monotonic() - t_start
        description = camera.describe()
    finally:
        camera.close()
    n = len(frame_ids)
    span = stamps[-1] - stamps[0] if n > 1 else 0.0
    image = description.get("image", {})
    return {
        "camera": description["serial"],
        "model": description.get("model", ""),
        "requested": frames,
        "frames": n,
        "fps": round((n - 1) / span, 2) if span > 0 else 0.0,
        "seconds": round(elapsed, 3),
        **{k: v for k, v in camera.stats.as_dict().items() if k in ("gaps", "timeouts", "incomplete", "faults")},
        "first_frame_id": frame_ids[0] if frame_ids else None,
        "last_frame_id": frame_ids[-1] if frame_ids else None,
        "width": image.get("width"),
        "height": image.get("height"),
        "pixel_format": image.get("pixel_format"),
        "pixel_format_out": config.pixel_format_out,
        "settings": description.get("settings", {}),
        "skipped_features": description.get("skipped_features", []),
        "fault": fault or None,
        "out": str(out),
    }


def cmd_cameras_grab(args: argparse.Namespace) -> int:
    """Grab N frames to PNG and print a JSON summary; exit 1 when fewer frames arrived."""
    config = grab_config(args)
    summary = grab_frames(config, args.frames, Path(args.out), getattr(args, "timeout", None))
    print(json.dumps(summary))
    return 0 if summary["frames"] == summary["requested"] else 1


def add_camera_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``cameras list`` and ``cameras grab`` on the main parser's sub-commands."""
    cameras = subparsers.add_parser("cameras", help="list GenICam devices, grab test frames")
    csub = cameras.add_subparsers(dest="cameras_command", required=True, metavar="ACTION")

    lst = csub.add_parser("list", help="devices offered by a GenTL producer (.cti)")
    lst.add_argument("--cti", default=None, help="GenTL producer (default: the viky.cti bundled with genicam)")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    lst.set_defaults(func=cmd_cameras_list)

    g = csub.add_parser("grab", help="grab N frames to PNG with a camera config; print a JSON summary")
    g.add_argument("--config", type=Path, default=None, help="camera YAML (camera_configs/); flags below override it")
    g.add_argument("--cti", default=None, help="GenTL producer (default: the config's, else the bundled viky.cti)")
    g.add_argument("--serial", default=None, help="device serial number")
    g.add_argument("--model", default=None, help="device model (when it names one device)")
    g.add_argument("--frames", type=int, required=True, help="number of frames to save")
    g.add_argument("--out", type=Path, required=True, help="new or empty folder for the PNGs")
    g.add_argument("--timeout", type=float, default=None, help="seconds per grab (default: the config's)")
    g.add_argument("--pixel-format", choices=["mono8", "bgr8"], default=None, help="output format")
    g.set_defaults(func=cmd_cameras_grab)


__all__ = ["add_camera_commands", "cmd_cameras_grab", "cmd_cameras_list", "grab_config", "grab_frames"]
