"""``inspector cameras``: list the devices of a GenTL producer, grab test frames through Harvesters."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from inspector.camera.base import CameraError
from inspector.camera.grab import grab_frames
from inspector.cli.common import Subparsers
from inspector.config.camera import VIKY_PLACEHOLDER, CameraConfig, load_camera_config
from inspector.config.loader import format_validation_error


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


def cmd_cameras_grab(args: argparse.Namespace) -> int:
    """Grab N frames to PNG and print a JSON summary; exit 1 when fewer frames arrived."""
    config = grab_config(args)
    summary = grab_frames(config, args.frames, Path(args.out), getattr(args, "timeout", None))
    print(json.dumps(summary))
    return 0 if summary["frames"] == summary["requested"] else 1


def register(sub: Subparsers) -> None:
    """``cameras list`` and ``cameras grab``; bad input (ValueError) is one line, exit 2."""
    cameras = sub.add_parser("cameras", help="list GenICam devices, grab test frames")
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
    cameras.set_defaults(value_errors_are_user_errors=True)
