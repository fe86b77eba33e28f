from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.manifest import (
    MANIFEST_NAME,
    ManifestEntry,
    ManifestError,
    append_entry,
    read_manifest,
    sha256_bytes,
    write_manifest,
)

SHA = "a" * 64


def _entry(**kw: object) -> ManifestEntry:
    base: dict[str, object] = {
        "file": "vial_000001.png",
        "product": "vial",
        "label": "particle",
        "criticality": "critical",
        "seed": 7,
        "sha256": SHA,
    }
    base.update(kw)
    return ManifestEntry.model_validate(base)


def test_round_trip(tmp_path: Path) -> None:
    entries = [
        _entry(),
        _entry(file="b.png", label="ok", criticality=None, seed=None, source="camera"),
        _entry(
            file="c.png",
            product="blister",
            label="empty_pocket",
            criticality="critical",
            pockets=["ok", "empty_pocket", "double_tablet"],
            mask="masks/c.png",
            nuisance=1.5,
        ),
    ]
    write_manifest(tmp_path, entries)
    again = read_manifest(tmp_path)
    assert again == entries
    # One JSON object per line, keys as documented.
    lines = (tmp_path / MANIFEST_NAME).read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[2])["pockets"] == ["ok", "empty_pocket", "double_tablet"]
    assert json.loads(lines[1])["criticality"] is None  # core keys always present, null for ok
    assert "pockets" not in json.loads(lines[1])  # optional keys only when set


def test_append_is_durable_line_by_line(tmp_path: Path) -> None:
    append_entry(tmp_path, _entry(file="a.png"))
    append_entry(tmp_path, _entry(file="b.png", label="fill_low", criticality="major"))
    assert [e.file for e in read_manifest(tmp_path)] == ["a.png", "b.png"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": "bubble"}, "not a vial label"),
        ({"criticality": "minor"}, "does not match label"),
        ({"sha256": "xyz"}, "sha256"),
        ({"file": "../escape.png"}, "relative path"),
        ({"file": "/abs.png"}, "relative path"),
        ({"pockets": ["ok"]}, "only for blisters"),
        ({"colour": "red"}, "colour"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_entries_name_the_field(tmp_path: Path, change: dict[str, object], message: str) -> None:
    obj = json.loads(_entry().to_json())
    obj.update(change)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(obj) + "\n")
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(tmp_path)
    assert ":1:" in str(info.value)


def test_blister_card_label_must_be_worst_pocket(tmp_path: Path) -> None:
    obj = json.loads(
        _entry(product="blister", label="double_tablet", criticality="major", pockets=["ok", "double_tablet"]).to_json()
    )
    obj["pockets"] = ["ok", "empty_pocket"]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(obj) + "\n")
    with pytest.raises(ManifestError, match="not the worst pocket"):
        read_manifest(tmp_path)


def test_corrupt_line_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text(_entry().to_json() + "\n{not json\n")
    with pytest.raises(ManifestError, match=r":2: not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(_entry().to_json() + "\n" + _entry().to_json() + "\n")
    with pytest.raises(ManifestError, match="already listed on line 1"):
        read_manifest(tmp_path)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no manifest\.jsonl"):
        read_manifest(tmp_path)


def test_verify_checks_files(tmp_path: Path) -> None:
    data = b"\x89PNG fake bytes"
    (tmp_path / "a.png").write_bytes(data)
    write_manifest(tmp_path, [_entry(file="a.png", sha256=sha256_bytes(data))])
    assert len(read_manifest(tmp_path, verify=True)) == 1
    (tmp_path / "a.png").write_bytes(data + b"!")
    with pytest.raises(ManifestError, match=r"sha256 of 'a\.png'"):
        read_manifest(tmp_path, verify=True)
    (tmp_path / "a.png").unlink()
    with pytest.raises(ManifestError, match="missing"):
        read_manifest(tmp_path, verify=True)


def test_repeated_presentations_of_one_item(tmp_path: Path) -> None:
    """Knapp needs each item shown again and again: same item and defect, other pose, light and noise."""
    import cv2
    import numpy as np

    from inspector.synth.generate import generate

    a = generate("blister", 2, 77, tmp_path / "a", defect_rate=1.0, presentations=3, workers=1)
    b = generate("blister", 2, 77, tmp_path / "b", defect_rate=1.0, presentations=3, workers=1)
    assert [e.sha256 for e in a] == [e.sha256 for e in b], "same seeds, same bytes"
    assert [(e.item_key, e.presentation) for e in a] == [
        (a[0].item_key, 0), (a[1].item_key, 0),
        (a[0].item_key, 1), (a[1].item_key, 1),
        (a[0].item_key, 2), (a[1].item_key, 2),
    ]  # fmt: skip
    assert a[0].item_key != a[1].item_key, "round by round: every item once, then again"
    first = [e for e in a if e.item_key == a[0].item_key]
    assert len({e.label for e in first}) == 1 and len({tuple(e.pockets or ()) for e in first}) == 1
    assert len({e.sha256 for e in first}) == 3, "each presentation is another image"
    areas = [int(np.count_nonzero(cv2.imread(str(tmp_path / "a" / (e.mask or "")), 0))) for e in first]
    assert max(areas) - min(areas) <= 0.1 * max(areas), "the same defect, only moved"
    plain = generate("blister", 2, 77, tmp_path / "c", defect_rate=1.0, workers=1)
    assert all(e.item_key is None and e.presentation is None for e in plain)
    with pytest.raises(ValueError, match="presentations"):
        generate("blister", 1, 77, tmp_path / "d", presentations=0)
