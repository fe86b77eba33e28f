"""``inspector cameras``: list the devices of a GenTL producer, grab test frames through Harvesters."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from inspector.camera.base import CameraError
from inspector.camera.grab import grab_frames
from inspector.cli.common import EXIT_FAILED, Subparsers, add_command, add_json_option, bounded, emit_json, say
from inspector.config.camera import VIKY_PLACEHOLDER, CameraConfig, load_camera_config
from inspector.config.loader import format_validation_error

FRAMES_MAX = 1_000_000
TIMEOUT_MAX_S = 3600.0


def cmd_cameras_list(args: argparse.Namespace) -> int:
    """The devices a GenTL producer offers: a table on stderr, a JSON list with ``--json``."""
    from inspector.camera.genicam import list_devices

    try:
        devices = list_devices(args.cti)
    except CameraError as exc:
        raise ValueError(str(exc)) from None
    if not devices:
        say(f"no devices found via {args.cti or VIKY_PLACEHOLDER}")
    else:
        say(f"{'serial':12} {'model':16} {'vendor':28} id")
        say(*(f"{d['serial']:12} {d['model']:16} {d['vendor']:28} {d['id']}" for d in devices))
    emit_json(args, devices)
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
    """Grab N frames to PNG; exit 1 when fewer frames arrived."""
    config = grab_config(args)
    summary = grab_frames(config, args.frames, Path(args.out), getattr(args, "timeout", None))
    pattern = f"; TEST PATTERN: {summary['test_pattern']}" if summary.get("test_pattern") else ""
    say(
        f"camera {summary['camera']} ({summary['model']}{pattern}): {summary['frames']} of {summary['requested']}"
        f" frames at {summary['fps']} fps, gaps {summary['gaps']}, timeouts {summary['timeouts']},"
        f" incomplete {summary['incomplete']} -> {summary['out']}"
        + (f"; fault: {summary['fault']}" if summary["fault"] else "")
    )
    emit_json(args, summary)
    return 0 if summary["frames"] == summary["requested"] else EXIT_FAILED


def register(sub: Subparsers) -> None:
    """``cameras list`` and ``cameras grab``; bad input (ValueError) is one line, exit 2."""
    cameras = add_command(
        sub,
        "cameras",
        help="list GenICam devices, grab test frames",
        example="inspector cameras grab --config camera_configs/viky.yaml --frames 10 --out /tmp/frames",
    )
    csub = cameras.add_subparsers(dest="cameras_command", required=True, metavar="ACTION")

    lst = add_command(
        csub, "list", help="devices offered by a GenTL producer (.cti)", example="inspector cameras list --json"
    )
    lst.add_argument("--cti", default=None, help="GenTL producer; default: the viky.cti bundled with genicam")
    add_json_option(lst, "the devices (a list)")
    lst.set_defaults(func=cmd_cameras_list)

    g = add_command(
        csub,
        "grab",
        help="grab N frames to PNG with a camera config; report frame rate and losses",
        description="Grab N frames to PNG with a camera config; report frame rate and losses."
        " Exit 1 when fewer frames arrived than asked for.",
        example="inspector cameras grab --config camera_configs/viky.yaml --frames 10 --out /tmp/frames",
    )
    g.add_argument("--config", type=Path, default=None, help="camera YAML (camera_configs/); flags below override it")
    g.add_argument("--cti", default=None, help="GenTL producer; default: the config's, else the bundled viky.cti")
    g.add_argument("--serial", default=None, help="device serial number")
    g.add_argument("--model", default=None, help="device model (when it names one device)")
    g.add_argument(
        "--frames", type=bounded(int, low=1, high=FRAMES_MAX), required=True, help="number of frames to save"
    )
    g.add_argument("--out", type=Path, required=True, help="new or empty folder for the PNGs")
    g.add_argument(
        "--timeout",
        type=bounded(float, above=0, high=TIMEOUT_MAX_S),
        default=None,
        help="seconds per grab; default: the config's",
    )
    g.add_argument("--pixel-format", choices=["mono8", "bgr8"], default=None, help="output format")
    add_json_option(g, "the summary")
    g.set_defaults(func=cmd_cameras_grab)
    cameras.set_defaults(value_errors_are_user_errors=True)
