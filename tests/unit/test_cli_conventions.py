"""Every command of every tool follows one convention (``inspector.cli.common``).

- every option has help text, defaults are shown, every command's help ends with an example;
- every numeric option is range-checked by the parser: the walk below feeds each one
  out-of-range and malformed values and wants one line on stderr, exit status 2, no traceback;
- stdout carries JSON only with ``--json``; human text goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inspector.cli import build_parser as inspector_parser
from inspector.cli import main as inspector_main
from inspector.cli.common import Bounded, HelpFormatter, Progress, bounded
from training.cli import build_parser as train_parser
from training.cli import class_count
from training.cli import main as train_main

ROOT = Path(__file__).resolve().parents[2]


def _hmi() -> tuple[Callable[[], argparse.ArgumentParser], Callable[[list[str]], int]]:
    from ui.app import build_parser, main

    return build_parser, main


def _tools() -> list[tuple[str, argparse.ArgumentParser, Callable[[list[str]], int]]]:
    hmi_parser, hmi_main = _hmi()
    return [
        ("inspector", inspector_parser(), inspector_main),
        ("inspector-train", train_parser(), train_main),
        ("inspector-hmi", hmi_parser(), hmi_main),
    ]


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, bool]]:
    """(words after the tool, parser, is a leaf) for the tool and every command and sub-command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield path, parser, not subs
    for action in subs:
        for name, child in action.choices.items():
            yield from _commands(child, (*path, name))


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if a.option_strings and not isinstance(a, argparse._HelpAction | argparse._VersionAction)
    ]


def _valid(action: argparse.Action) -> str:
    """A value the parser accepts for a required option."""
    if action.choices:
        return str(next(iter(action.choices)))
    if isinstance(action.type, Bounded):
        t = action.type
        for v in (t.low, t.above + 1 if t.above is not None else None, 1, 0):
            if v is not None:
                try:
                    return str(t(str(int(v) if t.kind is int else v)))
                except argparse.ArgumentTypeError:
                    continue
    return "/nonexistent/x"


def _bad_values(t: Bounded) -> list[str]:
    """Malformed values and values just outside each limit."""
    values = ["abc", "", "nan", "inf", "-inf", "1e999", "0x10", "1,5"]
    if t.kind is int:
        values += ["1.5", "2e3"]
    step = 1 if t.kind is int else 1e-9 * max(1.0, abs(t.low or t.high or t.above or t.below or 1.0))
    for limit, outside in ((t.low, -step), (t.above, 0), (t.high, step), (t.below, 0)):
        if limit is not None:
            v = limit + outside
            values.append(str(int(v)) if t.kind is int else repr(float(v)))
    return values


def test_every_numeric_option_is_range_checked() -> None:
    unchecked = []
    for tool, parser, _ in _tools():
        for path, p, _leaf in _commands(parser):
            for a in _options(p):
                plain_number = a.type in (int, float)
                other = a.type is not None and not isinstance(a.type, Bounded) and a.type not in (Path, class_count)
                if plain_number or other:
                    unchecked.append(f"{tool} {' '.join(path)} {a.option_strings[0]} ({a.type})")
    assert unchecked == [], "numeric options need a bounded() type"


def test_every_option_has_help_defaults_are_shown_and_help_ends_with_an_example() -> None:
    problems = []
    for tool, parser, _ in _tools():
        for path, p, _leaf in _commands(parser):
            name = " ".join((tool, *path))
            assert p.formatter_class is HelpFormatter, name
            formatter = HelpFormatter(prog=p.prog)
            for a in _options(p):
                text = formatter._get_help_string(a)
                if not a.help or a.help == argparse.SUPPRESS:
                    problems.append(f"{name} {a.option_strings[0]}: no help")
                elif a.default not in (None, False, [], ()) and not a.required and "default" not in str(text):
                    problems.append(f"{name} {a.option_strings[0]}: default {a.default!r} not shown")
            lines = [line for line in p.format_help().splitlines() if line.strip()]
            if lines[-2:-1] != ["example:"] or not lines[-1].strip().startswith(tool):
                problems.append(f"{name}: help does not end with an example of {tool}")
    assert problems == []


def _run_captured(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code) if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def test_walk_every_command_with_out_of_range_and_malformed_numbers() -> None:
    """Every numeric option of every command, fed bad values: one line, exit 2, never a traceback."""
    cases = failures = 0
    report = []
    for tool, parser, main in _tools():
        for path, p, leaf in _commands(parser):
            if not leaf:
                continue
            required = [x for a in _options(p) if a.required for x in (a.option_strings[0], _valid(a))]
            for a in _options(p):
                if not isinstance(a.type, Bounded):
                    continue
                for bad in _bad_values(a.type):
                    cases += 1
                    argv = [*path, *[x for x in required if x != a.option_strings[0]], f"{a.option_strings[0]}={bad}"]
                    code, out, err = _run_captured(main, argv)
                    lines = err.strip().splitlines()
                    ok = code == 2 and len(lines) == 1 and "Traceback" not in err and out == ""
                    ok = ok and a.option_strings[0] in lines[0] and lines[0].startswith(f"{tool}")
                    if not ok:
                        failures += 1
                        report.append(f"{tool} {' '.join(argv)} -> {code} {err!r}")
    assert failures == 0, "\n".join(report[:20])
    assert cases > 400, f"the walk fed only {cases} values"


@pytest.mark.parametrize(
    ("tool", "argv", "says"),
    [
        ("inspector", ["evaluate", "--model", "/nonexistent", "--images", "/nonexistent"], "is not a folder"),
        ("inspector", ["samples", "sheet", "--images", "/nonexistent", "--out", "/tmp/x.png"], "nonexistent"),
        ("inspector", ["input-reference", "--images", "/nonexistent"], "nonexistent"),
        ("inspector", ["run", "--station", "/nonexistent/station.yaml"], "station"),
        ("inspector", ["run", "--recipe", "no_such_recipe", "--plc", "none"], "no_such_recipe"),
        ("inspector", ["bench", "--recipe", "no_such_recipe"], "no_such_recipe"),
        ("inspector", ["run", "--camera", "files", "--plc", "none"], "files camera needs images"),
        ("inspector", ["cameras", "list", "--cti", "/nonexistent/x.cti"], "x.cti"),
        ("inspector", ["cameras", "grab", "--config", "/nonexistent.yaml", "--frames", "1", "--out", "/tmp/o"], "yaml"),
        ("inspector", ["line-sim", "--protocol", "modbus", "--security", "basic256sha256"], "OPC UA only"),
        ("inspector", ["line-sim", "--protocol", "modbus", "--inject", "garbage"], "KIND@ITEM"),
        ("inspector", ["nonsense"], "invalid choice"),
        ("inspector-train", ["report", "--package", "/nonexistent", "--results", "/nonexistent.json"], "nonexistent"),
        (
            "inspector-train",
            ["train", "--product", "vial", "--data", "/d", "--out", "/o", "--repeat", "x"],
            "--repeat: takes CLASS=N",
        ),
    ],
)
def test_malformed_inputs_are_one_line_refusals(tool: str, argv: list[str], says: str, tmp_path: Path) -> None:
    main = {"inspector": inspector_main, "inspector-train": train_main}[tool]
    code, out, err = _run_captured(main, argv)
    lines = err.strip().splitlines()
    assert code == 2 and out == "", (code, out, err)
    assert len(lines) == 1 and "Traceback" not in err and says in lines[0], err


def test_hmi_refuses_an_unknown_recipe_in_one_line(tmp_path: Path) -> None:
    _, hmi_main = _hmi()
    code, _, err = _run_captured(hmi_main, ["--root", str(tmp_path), "--product", "nope"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no recipe 'nope'" in err


def test_bounded_accepts_the_limits_and_refuses_the_rest() -> None:
    t = bounded(float, above=0, high=3)
    assert t("3") == 3.0 and t("1e-9") == 1e-9
    for bad in ("0", "3.0000001", "nan", "inf", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="above 0 and at most 3"):
            t(bad)
    n = bounded(int, low=1, high=64)
    assert n("64") == 64 and isinstance(n("1"), int)
    with pytest.raises(argparse.ArgumentTypeError, match=r"whole number from 1 to 64, got '1\.0'"):
        n("1.0")
    assert math.isclose(bounded(float, low=0)("0"), 0.0)


def test_json_goes_to_stdout_only_when_asked(tmp_path: Path) -> None:
    code, out, err = _run_captured(inspector_main, ["taxonomy"])
    assert code == 0 and out == "" and "glass_crack" in err
    code, out, _ = _run_captured(inspector_main, ["taxonomy", "--json"])
    assert code == 0 and any(r["code"] == "glass_crack" for r in json.loads(out))
    target = tmp_path / "sub" / "taxonomy.json"
    code, out, _ = _run_captured(inspector_main, ["taxonomy", "--json", str(target)])
    assert (
        code == 0
        and out == ""
        and json.loads(target.read_text()) == json.loads(_run_captured(inspector_main, ["taxonomy", "--json", "-"])[1])
    )


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal_and_plain_lines_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter(range(1_000_000))
    monkeypatch.setattr("inspector.cli.common.time.monotonic", lambda: next(ticks) * 0.05)  # 50 ms a look
    tty = _Tty()
    bar = Progress("evaluate", 200, "items", stream=tty)
    for i in range(1, 201):
        bar.update(i)
    text = tty.getvalue()
    assert "\r" in text and "[" in text and "ETA" in text and text.endswith("\n")
    assert "200/200 items" in text
    plain = io.StringIO()
    bar = Progress("evaluate", 200, "items", stream=plain, every_s=3600)
    for i in range(1, 201):
        bar.update(i)
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue() and len(lines) == 2, lines  # the first update and the last
    assert lines[0].startswith("evaluate:") and "1/200 items" in lines[0] and "200/200" in lines[1]
    assert "/s" not in lines[0] and "ETA" not in lines[0], "no rate before a second has passed"
