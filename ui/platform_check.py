"""Can Qt's platform plugin start here? Checked before Qt loads, so a missing library is one line, not an abort.

Standard library only (no Qt import): ``inspector-hmi`` runs it before PyQt6's libraries load,
and ``.ci/run`` reads ``APT_PACKAGES`` from it with the system Python to install exactly the
README's package line.

Qt 6.5+ loads the xcb platform plugin for X11, and the plugin needs xcb libraries that a
desktop usually has, except ``libxcb-cursor0``, and a server without a desktop has none of.
Which libraries are missing is asked of the dynamic loader itself (``ldd`` on the plugin): it
resolves the plugin's whole dependency tree the way Qt's ``dlopen`` will.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

# Debian / Ubuntu packages for the HMI on a machine without a desktop: Xvfb (with xauth, which
# xvfb-run needs) and the libraries Qt's GUI and xcb plugin load that neither Xvfb nor each other
# pull in. The README gives this line word for word (tests/unit/test_readme.py checks it).
APT_PACKAGES = (
    "xvfb",
    "xauth",
    "libegl1",
    "libfontconfig1",
    "libglib2.0-0",
    "libdbus-1-3",
    "libxkbcommon-x11-0",
    "libxcb-cursor0",
    "libxcb-icccm4",
    "libxcb-keysyms1",
    "libxcb-shape0",
)
INSTALL_LINE = "sudo apt-get install " + " ".join(APT_PACKAGES)
XVFB_HINT = "xvfb-run -a inspector-hmi"

Ldd = Callable[[Path], "str | None"]  # quoted: .ci/run may read this file with an older python3


def xcb_plugin() -> Path | None:
    """The xcb platform plugin of the installed PyQt6 wheel, found without importing Qt."""
    spec = importlib.util.find_spec("PyQt6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        plugin = Path(location) / "Qt6" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def run_ldd(path: Path) -> str | None:
    """``ldd``'s report on ``path``; None where there is no ``ldd`` (then Qt is left to try)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        done = subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def missing_libraries(ldd_output: str) -> list[str]:
    """The sonames ``ldd`` could not find ("libxcb-cursor.so.0 => not found"), in its order, once each."""
    missing: list[str] = []
    for line in ldd_output.splitlines():
        name, sep, where = line.strip().partition("=>")
        if sep and where.strip() == "not found" and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def uses_xcb(env: Mapping[str, str]) -> bool:
    """Will Qt pick the xcb platform? Yes for QT_QPA_PLATFORM=xcb, and when unset outside a Wayland session."""
    platform = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()
    if platform:
        return platform == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def platform_problem(
    env: Mapping[str, str] | None = None,
    *,
    plugin: Path | None = None,
    ldd: Ldd = run_ldd,
    prog: str = "inspector-hmi",
) -> str | None:
    """One line saying why Qt's platform cannot start here, or None where it can (or cannot be told).

    Only the xcb platform is checked: offscreen, Wayland, VNC and the others are left to Qt.
    """
    env = os.environ if env is None else env
    if not uses_xcb(env):
        return None
    if not env.get("DISPLAY"):
        return (
            f"{prog}: error: no display (DISPLAY is not set): run it under a virtual one, "
            f"`{XVFB_HINT} ...`, or set QT_QPA_PLATFORM=offscreen"
        )
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return None
    report = ldd(plugin)
    missing = missing_libraries(report) if report else []
    if not missing:
        return None
    return (
        f"{prog}: error: the Qt xcb platform cannot load ({', '.join(missing)} not found);"
        f" it needs system packages: {INSTALL_LINE}"
    )


if __name__ == "__main__":  # `python3 ui/platform_check.py`: the package list, for .ci/run
    print(" ".join(APT_PACKAGES))
