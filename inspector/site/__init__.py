"""Site records: many stations forward their records to one PostgreSQL database.

A station keeps writing its own SQLite file (it runs on when the network is down); every record
row it commits also queues its key in the station's outbox (records schema 7). The
:class:`~inspector.site.forwarder.Forwarder` pushes the queued rows to the site database in commit
order, in transactions that also move the station's cursor, so a push that fails half-way leaves
nothing behind and the next one resumes where the last committed one ended. The site's schema
(:mod:`inspector.site.schema`, Alembic migrations in :mod:`inspector.site.migrations`) enforces the
station's integrity rules with its own constraints and triggers, and refuses an item or audit
entry that does not continue its hash chain; :mod:`inspector.site.verify` recomputes every hash.
"""
