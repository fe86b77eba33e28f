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


def qualify(db: Path, *, model_digest: str, recipe_sha256: str, runner: str = "eng1") -> str:
    """A formal, passing, signed qualification of this model and recipe, as the records hold it.

    The suite is approved first (authored by an engineer, reviewed and approved by QA), the run is
    completed with a passing result by ``runner``, reviewed by qa1 and approved by qa2. What the
    runner itself measures is tested in tests/qualification; here only the records matter.
    """
    import uuid

    from inspector.records import qualification
    from inspector.records.lifecycle import signed_step

    suite_sha = uuid.uuid4().hex * 2
    run_id = f"QUAL-{uuid.uuid4().hex[:8]}"
    with RecordStore(db) as store:
        for meaning, who in (("authored", "eng2"), ("reviewed", "qa1"), ("approved", "qa2")):
            signed_step(store, meaning, username=who, password=PASSWORDS[who], object_type="suite",
                        object_id="oq@1.0.0", sha256=suite_sha, reason="criteria fixed")  # fmt: skip
        actor = authenticate(store, runner, PASSWORDS[runner])
        qualification.create(store, actor, run_id=run_id, suite_id="oq@1.0.0", suite_sha256=suite_sha,
                             recipe_id="r@1.0.0", recipe_sha256=recipe_sha256, model_id="m@1.0.0",
                             model_digest=model_digest)  # fmt: skip
        qualification.start(store, actor, run_id)
        qualification.complete(store, actor, run_id, passed=True, report_sha256="e" * 64, result={"passed": True})
        qualification.sign(store, username="qa1", password=PASSWORDS["qa1"], run_id=run_id, meaning="reviewed",
                           reason="report read")  # fmt: skip
        qualification.sign(store, username="qa2", password=PASSWORDS["qa2"], run_id=run_id, meaning="approved",
                           reason="criteria met")  # fmt: skip
    return run_id
