"""``inspector-hmi`` says which system packages Qt's xcb platform lacks, before Qt loads (ui/platform_check.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ui import platform_check
from ui.platform_check import APT_PACKAGES, INSTALL_LINE, missing_libraries, platform_problem, uses_xcb

LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PyQt6/Qt6/lib/libQt6XcbQpa.so.6 (0x00007f31)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-cursor.so.0 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f31)
"""


def test_missing_libraries_are_the_ones_ldd_cannot_find_once_each() -> None:
    assert missing_libraries(LDD_MISSING) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4"]
    assert missing_libraries("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


def test_a_missing_library_is_one_line_naming_it_and_the_readme_packages(tmp_path: Path) -> None:
    plugin = tmp_path / "libqxcb.so"
    message = platform_problem({"DISPLAY": ":0"}, plugin=plugin, ldd=lambda _p: LDD_MISSING)
    assert message is not None and "\n" not in message
    assert message.startswith("inspector-hmi: error: the Qt xcb platform cannot load (")
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4 not found" in message
    assert message.endswith(INSTALL_LINE)


def test_no_display_says_to_run_under_xvfb() -> None:
    message = platform_problem({}, ldd=lambda _p: pytest.fail("no display: nothing to load"))
    assert message is not None and "\n" not in message
    assert "DISPLAY is not set" in message and "xvfb-run -a inspector-hmi" in message


@pytest.mark.parametrize(
    ("env", "xcb"),
    [
        ({}, True),
        ({"QT_QPA_PLATFORM": "xcb"}, True),
        ({"QT_QPA_PLATFORM": "xcb:nograb", "WAYLAND_DISPLAY": "wayland-0"}, True),
        ({"QT_QPA_PLATFORM": "offscreen"}, False),
        ({"QT_QPA_PLATFORM": "wayland"}, False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, False),
    ],
)
def test_only_the_xcb_platform_is_checked(env: dict[str, str], xcb: bool) -> None:
    assert uses_xcb(env) is xcb
    if not xcb:
        assert platform_problem(env, ldd=lambda _p: LDD_MISSING) is None


def test_all_libraries_found_is_no_problem() -> None:
    ok = "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x1)\n"
    assert platform_problem({"DISPLAY": ":0"}, plugin=Path("libqxcb.so"), ldd=lambda _p: ok) is None


def test_without_ldd_or_the_plugin_qt_is_left_to_try() -> None:
    assert platform_problem({"DISPLAY": ":0"}, plugin=Path("libqxcb.so"), ldd=lambda _p: None) is None


@pytest.mark.skipif(shutil.which("ldd") is None or not sys.platform.startswith("linux"), reason="needs ldd (Linux)")
def test_the_real_loader_reports_a_plugin_whose_libraries_are_not_there(tmp_path: Path) -> None:
    """The wheel's own plugin, copied away from the Qt libraries its RUNPATH finds: ldd really misses them."""
    plugin = platform_check.xcb_plugin()
    if plugin is None:
        pytest.skip("PyQt6 ships no xcb plugin here")
    assert platform_problem({"DISPLAY": ":0"}, plugin=plugin) is None, "this machine has the packages"
    stray = tmp_path / "platforms" / "libqxcb.so"
    stray.parent.mkdir()
    shutil.copy(plugin, stray)
    message = platform_problem({"DISPLAY": ":0"}, plugin=stray)
    assert message is not None and "libQt6XcbQpa.so.6" in message and message.endswith(INSTALL_LINE)


def test_the_package_list_is_apt_names_and_installs_xvfb() -> None:
    assert len(set(APT_PACKAGES)) == len(APT_PACKAGES)
    assert {"xvfb", "xauth", "libxcb-cursor0"} <= set(APT_PACKAGES)
    assert all(p == p.lower() and " " not in p for p in APT_PACKAGES)
    assert "sudo apt-get install " + " ".join(APT_PACKAGES) == INSTALL_LINE
