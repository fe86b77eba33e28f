"""``inspector cameras list | grab``: find GenICam devices and check one end to end.

``grab`` opens a camera exactly as the station does (same config, same feature writes
and read-back), saves N frames as PNG and reports the measured frame rate and the loss
counters. Bad input raises ``ValueError`` with a clear message.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2

from inspector.camera.base import CameraError, CameraFault
from inspector.config.camera import CameraConfig

# A camera that delivers nothing for this many grab timeouts in a row is given up on.
MAX_CONSECUTIVE_TIMEOUTS = 3
# Fast PNG compression: writing must keep up with acquisition or frames are lost.
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]


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
        "test_pattern": description.get("test_pattern"),
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


__all__ = ["grab_frames"]
