"""The site schema: Alembic makes exactly the tables the code describes; a site that is not current is refused."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from inspector.site.db import SiteError, current_revision, head_revision, require_current, site_url, upgrade
from inspector.site.local_server import LocalPostgres
from inspector.site.schema import metadata
from tests.support.site import Site, drop_site, new_site


def test_the_migrations_make_the_schema_the_code_describes(site: Site) -> None:
    with site.engine.connect() as c:
        assert compare_metadata(MigrationContext.configure(c), metadata) == []
        triggers = {r[0] for r in c.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))}
    assert {
        "audit_chain",
        "items_chain",
        "items_once",
        "batches_end",
        "items_no_delete",
        "items_no_truncate",
    } <= triggers
    assert {"site_audit_chain", "site_audit_append_only"} <= triggers
    assert {"qualification_runs_forward", "qualification_runs_no_delete"} <= triggers
    assert upgrade(site.engine) == ("0003", "0003")  # again: nothing to do
    assert current_revision(site.engine) == head_revision() == "0003"


def test_a_site_made_by_the_first_revision_upgrades_in_place(postgres: LocalPostgres) -> None:
    from alembic import command

    from inspector.site.db import _config

    s, name = new_site(postgres)
    try:
        with s.engine.begin() as c:  # back to a site as revision 0001 made it
            c.execute(text("DROP TABLE site_audit"))
            c.execute(text("DROP FUNCTION site_audit_continues_the_chain"))
            c.execute(text("DROP TABLE qualification_runs"))
            c.execute(text("DROP FUNCTION qualification_runs_forward_only"))
            c.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        with pytest.raises(SiteError, match="site init"):
            require_current(s.engine)
        assert upgrade(s.engine) == ("0001", "0003")
        with s.engine.connect() as c:
            assert compare_metadata(MigrationContext.configure(c), metadata) == []
        cfg = _config(s.engine)
        with pytest.raises(RuntimeError, match="never dropped"):
            command.downgrade(cfg, "0001")
    finally:
        drop_site(postgres, s, name)


def test_a_site_without_the_schema_is_refused_with_the_command_to_run(postgres: LocalPostgres) -> None:
    s, name = new_site(postgres)
    try:
        with s.engine.begin() as c:
            c.execute(text("DELETE FROM alembic_version"))
        with pytest.raises(SiteError, match="site init"):
            require_current(s.engine)
    finally:
        drop_site(postgres, s, name)


def test_the_site_url_is_postgresql() -> None:
    assert site_url("postgresql://qa@db:5432/site").drivername == "postgresql+psycopg"
    with pytest.raises(SiteError, match="PostgreSQL"):
        site_url("sqlite:///x.db")
    with pytest.raises(SiteError, match="not a database URL"):
        site_url("qa-db:5432")
