"""One definition of the records' tables (SQLAlchemy Core): a station's SQLite database, new or
upgraded from any older schema, is exactly it (Alembic's comparison), and the site's tables are it,
keyed by station (the PostgreSQL side: ``tests/site/test_site_schema.py``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Text, create_engine

from inspector.records import RecordStore, tables
from inspector.records.store import _MIGRATIONS, SCHEMA_VERSION
from inspector.site import schema as site_schema


def _differences(path: Path, metadata: MetaData = tables.metadata) -> list[Any]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    out = []
    for d in diffs:
        change = d[0] if isinstance(d, list) else d
        # SQLite's INTEGER PRIMARY KEY is the rowid: NULL there means "the next id", so it reflects as nullable.
        if change[0] == "modify_nullable" and metadata.tables[change[2]].c[change[3]].primary_key:
            continue
        out.append(change)
    return out


def test_a_new_station_database_is_the_tables_the_code_describes(tmp_path: Path) -> None:
    RecordStore(tmp_path / "s.sqlite").close()
    assert _differences(tmp_path / "s.sqlite") == []


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_database_of_every_older_schema_upgrades_to_the_same_tables(tmp_path: Path, version: int) -> None:
    path = tmp_path / f"schema{version}.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for step in range(version):
            conn.executescript(f"BEGIN;\n{_MIGRATIONS[step]}\nPRAGMA user_version = {step + 1};\nCOMMIT;")
    finally:
        conn.close()
    with RecordStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    assert _differences(path) == []


def test_the_comparison_sees_a_changed_type_and_an_extra_column(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    RecordStore(path).close()
    changed = MetaData()
    for t in tables.metadata.sorted_tables:
        t.to_metadata(changed)
    changed.tables["items"].c.item_id.type = Text()
    assert [c[:4] for c in _differences(path, changed)] == [("modify_type", None, "items", "item_id")]
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE alarms ADD COLUMN note TEXT")
    conn.close()
    assert [(c[0], c[2], c[3].name) for c in _differences(path)] == [("remove_column", "alarms", "note")]


def test_the_site_tables_are_the_station_tables_keyed_by_station() -> None:
    for name in site_schema.FORWARDED:
        station, site = tables.metadata.tables[name], site_schema.metadata.tables[name]
        expected = {"station_id": (Text, False)} | {
            ("local_id" if c.name == "id" else c.name): (type(c.type), False if c.primary_key else c.nullable)
            for c in station.columns
            if (name, c.name) != ("users", "password_hash")  # the site keeps no passwords
        }
        if name == "batches":
            expected["anchor"] = (Text, False)  # the hash the batch's first item links to
        assert {c.name: (type(c.type), c.nullable) for c in site.columns} == expected, name


def test_after_step_7_the_station_schema_is_alembics_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    from inspector.records.migrate import head_revision
    from inspector.records.store import ALEMBIC_HEAD, SchemaVersionError

    assert head_revision() == ALEMBIC_HEAD
    path = tmp_path / "s.sqlite"
    RecordStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(ALEMBIC_HEAD,)]
    conn.execute("UPDATE alembic_version SET version_num = 's9999'")  # written by newer software
    conn.close()
    with pytest.raises(SchemaVersionError, match=r"s9999.*newer"):
        RecordStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("s9999",)], "left as it was"
    conn.close()


def _at_s0007(path: Path, *runs: tuple[str, str]) -> None:
    """A database as revision s0007 left it, holding qualification runs (run id, state)."""
    from inspector.records.migrate import upgrade

    conn = sqlite3.connect(path, isolation_level=None)
    for step in range(SCHEMA_VERSION):
        conn.executescript(f"BEGIN;\n{_MIGRATIONS[step]}\nPRAGMA user_version = {step + 1};\nCOMMIT;")
    for run_id, state in runs:
        conn.execute(
            "INSERT INTO qualification_runs (run_id, suite_id, suite_sha256, recipe_id, recipe_sha256, model_id,"
            " model_digest, formal, state, created_utc, created_by)"
            " VALUES (?, 's', ?, 'r', ?, 'm', ?, 0, ?, 't', 'qa')",
            (run_id, "a" * 64, "b" * 64, "c" * 64, state),
        )
    for code in ("CAMERA_FAULT", "PLC_FAULT"):  # records already queued for the site
        conn.execute("INSERT INTO alarms (created_utc, source, code, message) VALUES ('t', 'x', ?, 'm')", (code,))
    conn.execute("UPDATE alarms SET acknowledged_utc = 't2', acknowledged_by = 'op' WHERE code = 'PLC_FAULT'")
    conn.close()
    upgrade(path, busy_timeout_s=5.0, target="s0007")


def _outbox(path: Path) -> list[tuple[int, str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return [tuple(r) for r in conn.execute("SELECT seq, tbl, row_key, op FROM outbox ORDER BY seq")]
    finally:
        conn.close()


def test_revision_s0008_queues_qualification_runs_and_keeps_every_outbox_entry(tmp_path: Path) -> None:
    from inspector.records import qualification
    from inspector.records.audit import Actor

    path = tmp_path / "s.sqlite"
    _at_s0007(path, ("Q-1", "completed"), ("Q-2", "created"))
    before = _outbox(path)
    assert before and not [e for e in before if e[1] == "qualification_runs"]
    with RecordStore(path) as store:
        after = _outbox(path)
        assert after[: len(before)] == before, "every entry kept, with its sequence number"
        assert [e[1:] for e in after[len(before) :]] == [
            ("qualification_runs", "Q-1", "insert"),
            ("qualification_runs", "Q-2", "insert"),
            ("qualification_runs", "Q-1", "update"),
        ]
        qa = Actor("qa", "qa")
        qualification.create(store, qa, run_id="Q-3", suite_id="s", suite_sha256="a" * 64, recipe_id="r",
                             recipe_sha256="b" * 64, model_id="m", model_digest="c" * 64)  # fmt: skip
        qualification.start(store, qa, "Q-3")
    queued = [e for e in _outbox(path) if e[2] == "Q-3"]
    assert [e[3] for e in queued] == ["insert", "update"] and queued[0][0] > after[-1][0]
    assert _differences(path) == []


def test_a_failing_revision_changes_nothing(tmp_path: Path) -> None:
    from inspector.records.store import RecordError

    path = tmp_path / "s.sqlite"
    _at_s0007(path, ("Q-1", "completed"))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER outbox_alarms_update")  # s0008 drops it: its DROP fails half-way through
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    schema = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()[0]
    conn.close()
    before = _outbox(path)
    with pytest.raises(RecordError, match="changed nothing"):
        RecordStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("s0007",)]
    assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")} == triggers
    assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()[0] == schema
    conn.close()
    assert _outbox(path) == before
