"""A station database with one account per role (and a second QA), for the GxP tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inspector.records import RecordStore
from inspector.records.audit import Actor
from inspector.records.users import add_user, authenticate, claim_mode

PASSWORDS = {
    "admin1": "admin-password-1",
    "op1": "operator-password-1",
    "eng1": "engineer-password-1",
    "eng2": "engineer-password-2",
    "qa1": "qa-password-number-1",
    "qa2": "qa-password-number-2",
}
ROLES = {"admin1": "admin", "op1": "operator", "eng1": "engineer", "eng2": "engineer", "qa1": "qa", "qa2": "qa"}


@dataclass
class Station:
    db: Path
    store: RecordStore

    def actor(self, username: str) -> Actor:
        return authenticate(self.store, username, PASSWORDS[username])


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hashing six passwords costs about a second: done once, copied per test."""
    db = tmp_path_factory.mktemp("gxp") / "station.sqlite"
    with RecordStore(db) as store:
        claim_mode(store, "production")
        admin = add_user(store, None, "admin1", "Ada Admin", "admin", PASSWORDS["admin1"], reason="first admin")
        by = admin.actor()
        for name, role in ROLES.items():
            if name != "admin1":
                add_user(store, by, name, f"{name.title()} Person", role, PASSWORDS[name], reason="staffing the line")
    return db


@pytest.fixture
def station(_template: Path, tmp_path: Path) -> Iterator[Station]:
    import shutil

    db = tmp_path / "station.sqlite"
    shutil.copy(_template, db)
    with RecordStore(db) as store:
        yield Station(db, store)
