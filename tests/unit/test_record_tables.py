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
