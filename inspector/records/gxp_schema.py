"""Records schema step for GxP: users, station settings, the audit trail, e-signatures, the release
lifecycle of models and recipes, and hash links over item rows.

The rules are in the schema, not only in Python (a bug or a hand with the file cannot store a
record that breaks them): accounts are deactivated, never deleted, and never reactivated;
audit entries, signatures and lifecycle steps are append-only; an audit entry must carry the
next sequence number and the hash of the entry before it; an item row's hash links are
write-once like the row; a batch's release status is fixed at its start.

Hashes are computed in Python (SQLite has no SHA-256); :mod:`inspector.records.audit` and
:mod:`inspector.records.chain` recompute them to verify.
"""

from __future__ import annotations

GENESIS = "0" * 64

GXP_MIGRATION = f"""
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
INSERT INTO settings (key, value) VALUES ('lockout_after', '5'), ('idle_logout_s', '900');

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE CHECK (length(username) BETWEEN 2 AND 64 AND username NOT GLOB '*[^a-z0-9._-]*'),
    full_name TEXT NOT NULL CHECK (trim(full_name) <> ''),
    role TEXT NOT NULL CHECK (role IN ('operator', 'engineer', 'qa', 'admin')),
    password_hash TEXT NOT NULL CHECK (password_hash GLOB '$argon2id$*'),
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    locked INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1)),
    failed_logins INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    demo INTEGER NOT NULL DEFAULT 0 CHECK (demo IN (0, 1)),
    created_utc TEXT NOT NULL
) STRICT;

CREATE TRIGGER users_no_delete BEFORE DELETE ON users
BEGIN SELECT RAISE(ABORT, 'user accounts are deactivated, never deleted'); END;

CREATE TRIGGER users_identity_fixed BEFORE UPDATE ON users
WHEN NEW.id IS NOT OLD.id OR NEW.username IS NOT OLD.username OR NEW.created_utc IS NOT OLD.created_utc
  OR NEW.demo IS NOT OLD.demo OR (OLD.active = 0 AND NEW.active <> 0)
BEGIN SELECT RAISE(ABORT, 'a user account keeps its name for ever and is never reactivated'); END;

CREATE TABLE audit_trail (
    seq INTEGER PRIMARY KEY,
    at_utc TEXT NOT NULL CHECK (at_utc GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*+00:00'),
    username TEXT NOT NULL CHECK (username <> ''),
    role TEXT NOT NULL CHECK (role <> ''),
    action TEXT NOT NULL CHECK (action <> ''),
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    old_value TEXT CHECK (old_value IS NULL OR json_valid(old_value)),
    new_value TEXT CHECK (new_value IS NULL OR json_valid(new_value)),
    reason TEXT NOT NULL,
    prev_hash TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64)
) STRICT;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_trail
BEGIN SELECT RAISE(ABORT, 'the audit trail cannot be changed'); END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_trail
BEGIN SELECT RAISE(ABORT, 'the audit trail cannot be deleted'); END;

CREATE TRIGGER audit_appends_to_the_chain BEFORE INSERT ON audit_trail
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit_trail)
  OR NEW.prev_hash IS NOT coalesce((SELECT hash FROM audit_trail ORDER BY seq DESC LIMIT 1), '{GENESIS}')
BEGIN SELECT RAISE(ABORT, 'an audit entry takes the next sequence number and the hash of the last entry'); END;

CREATE TABLE signatures (
    id INTEGER PRIMARY KEY,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    object_sha256 TEXT NOT NULL CHECK (length(object_sha256) = 64),
    meaning TEXT NOT NULL CHECK (meaning IN ('authored', 'reviewed', 'approved', 'released', 'rejected')),
    user_id INTEGER NOT NULL REFERENCES users(id),
    username TEXT NOT NULL,
    full_name TEXT NOT NULL,
    role TEXT NOT NULL,
    signed_utc TEXT NOT NULL,
    reason TEXT NOT NULL,
    audit_seq INTEGER NOT NULL REFERENCES audit_trail(seq)
) STRICT;
CREATE INDEX signatures_object ON signatures (object_type, object_id);

CREATE TRIGGER signatures_no_update BEFORE UPDATE ON signatures
BEGIN SELECT RAISE(ABORT, 'a signature cannot be changed'); END;
CREATE TRIGGER signatures_no_delete BEFORE DELETE ON signatures
BEGIN SELECT RAISE(ABORT, 'a signature cannot be deleted'); END;

CREATE TABLE lifecycle (
    id INTEGER PRIMARY KEY,
    object_type TEXT NOT NULL CHECK (object_type IN ('model', 'recipe', 'suite')),
    object_id TEXT NOT NULL,
    sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
    state TEXT NOT NULL CHECK (state IN ('draft', 'reviewed', 'approved', 'retired', 'rejected')),
    at_utc TEXT NOT NULL,
    username TEXT NOT NULL,
    signature_id INTEGER REFERENCES signatures(id),
    audit_seq INTEGER NOT NULL REFERENCES audit_trail(seq)
) STRICT;
CREATE INDEX lifecycle_object ON lifecycle (object_type, object_id, sha256);

CREATE TRIGGER lifecycle_no_update BEFORE UPDATE ON lifecycle
BEGIN SELECT RAISE(ABORT, 'a lifecycle step cannot be changed'); END;
CREATE TRIGGER lifecycle_no_delete BEFORE DELETE ON lifecycle
BEGIN SELECT RAISE(ABORT, 'a lifecycle step cannot be deleted'); END;

-- Item rows are hash-linked within their batch (inspector.records.chain); the links are write-once.
ALTER TABLE items ADD COLUMN prev_hash TEXT;
ALTER TABLE items ADD COLUMN row_hash TEXT;
ALTER TABLE items ADD COLUMN ack_hash TEXT;
CREATE INDEX items_batch_order ON items (batch_id, id);  -- the newest row of a batch, in O(log n)

DROP TRIGGER items_write_once;
CREATE TRIGGER items_write_once BEFORE UPDATE ON items
WHEN OLD.plc_ack IS NOT NULL
  OR NEW.id IS NOT OLD.id OR NEW.batch_id IS NOT OLD.batch_id OR NEW.item_id IS NOT OLD.item_id
  OR NEW.frame_id IS NOT OLD.frame_id OR NEW.t_frame IS NOT OLD.t_frame
  OR NEW.created_utc IS NOT OLD.created_utc OR NEW.decision IS NOT OLD.decision
  OR NEW.reason IS NOT OLD.reason OR NEW.deadline_met IS NOT OLD.deadline_met
  OR NEW.label IS NOT OLD.label OR NEW.pocket_index IS NOT OLD.pocket_index
  OR NEW.confidence IS NOT OLD.confidence OR NEW.class_scores IS NOT OLD.class_scores
  OR NEW.anomaly_score IS NOT OLD.anomaly_score OR NEW.latency IS NOT OLD.latency
  OR NEW.image_path IS NOT OLD.image_path OR NEW.image_sha256 IS NOT OLD.image_sha256
  OR NEW.truth_label IS NOT OLD.truth_label OR NEW.alarm IS NOT OLD.alarm
  OR NEW.prev_hash IS NOT OLD.prev_hash OR NEW.row_hash IS NOT OLD.row_hash
  OR (NEW.ack_hash IS NOT OLD.ack_hash AND NEW.plc_ack IS NULL)
BEGIN SELECT RAISE(ABORT, 'item records are write-once; only an unset PLC acknowledgement may be set'); END;

-- A batch is released (approved recipe and model) or a demo; its end stores the head of its
-- item chain and of the audit trail, so a truncated tail of either is seen.
ALTER TABLE batches ADD COLUMN release_status TEXT NOT NULL DEFAULT 'NOT RELEASED - DEMO'
    CHECK (release_status IN ('released', 'NOT RELEASED - DEMO', 'qualification run', 'start-up challenge'));
ALTER TABLE batches ADD COLUMN items_head TEXT;
ALTER TABLE batches ADD COLUMN audit_head_seq INTEGER;
ALTER TABLE batches ADD COLUMN audit_head_hash TEXT;

DROP TRIGGER batches_end_once;
CREATE TRIGGER batches_end_once BEFORE UPDATE ON batches
WHEN OLD.state <> 'running'
  OR NEW.batch_id IS NOT OLD.batch_id OR NEW.product IS NOT OLD.product
  OR NEW.recipe_id IS NOT OLD.recipe_id OR NEW.recipe_version IS NOT OLD.recipe_version
  OR NEW.recipe_sha256 IS NOT OLD.recipe_sha256 OR NEW.model_id IS NOT OLD.model_id
  OR NEW.model_version IS NOT OLD.model_version OR NEW.model_sha256 IS NOT OLD.model_sha256
  OR NEW.camera_serial IS NOT OLD.camera_serial OR NEW.camera_settings IS NOT OLD.camera_settings
  OR NEW.started_utc IS NOT OLD.started_utc OR NEW.operator IS NOT OLD.operator
  OR NEW.release_status IS NOT OLD.release_status
BEGIN SELECT RAISE(ABORT, 'a batch record can only be ended, once'); END;

-- Qualification runs (inspector.records.qualification): a state machine whose steps only go
-- forward; identity fixed at creation, the result and the report's hash set once on completion.
CREATE TABLE qualification_runs (
    run_id TEXT PRIMARY KEY,
    suite_id TEXT NOT NULL,
    suite_sha256 TEXT NOT NULL CHECK (length(suite_sha256) = 64),
    recipe_id TEXT NOT NULL,
    recipe_sha256 TEXT NOT NULL CHECK (length(recipe_sha256) = 64),
    model_id TEXT NOT NULL,
    model_digest TEXT NOT NULL CHECK (length(model_digest) = 64),
    formal INTEGER NOT NULL CHECK (formal IN (0, 1)),
    state TEXT NOT NULL CHECK (state IN ('created', 'running', 'completed', 'aborted', 'reviewed', 'approved')),
    created_utc TEXT NOT NULL,
    created_by TEXT NOT NULL,
    ended_utc TEXT,
    passed INTEGER CHECK (passed IS NULL OR passed IN (0, 1)),
    report_sha256 TEXT CHECK (report_sha256 IS NULL OR length(report_sha256) = 64),
    result TEXT CHECK (result IS NULL OR json_valid(result))
) STRICT;

CREATE TRIGGER qualification_no_delete BEFORE DELETE ON qualification_runs
BEGIN SELECT RAISE(ABORT, 'a qualification run cannot be deleted'); END;

CREATE TRIGGER qualification_forward_only BEFORE UPDATE ON qualification_runs
WHEN NEW.run_id IS NOT OLD.run_id OR NEW.suite_id IS NOT OLD.suite_id OR NEW.suite_sha256 IS NOT OLD.suite_sha256
  OR NEW.recipe_id IS NOT OLD.recipe_id OR NEW.recipe_sha256 IS NOT OLD.recipe_sha256
  OR NEW.model_id IS NOT OLD.model_id OR NEW.model_digest IS NOT OLD.model_digest OR NEW.formal IS NOT OLD.formal
  OR NEW.created_utc IS NOT OLD.created_utc OR NEW.created_by IS NOT OLD.created_by
  OR (OLD.ended_utc IS NOT NULL AND NEW.ended_utc IS NOT OLD.ended_utc)
  OR (OLD.passed IS NOT NULL AND NEW.passed IS NOT OLD.passed)
  OR (OLD.report_sha256 IS NOT NULL AND NEW.report_sha256 IS NOT OLD.report_sha256)
  OR (OLD.result IS NOT NULL AND NEW.result IS NOT OLD.result)
  OR NOT ((OLD.state = 'created' AND NEW.state IN ('running', 'aborted'))
       OR (OLD.state = 'running' AND NEW.state IN ('completed', 'aborted'))
       OR (OLD.state = 'completed' AND NEW.state = 'reviewed')
       OR (OLD.state = 'reviewed' AND NEW.state = 'approved'))
BEGIN SELECT RAISE(ABORT, 'a qualification run only moves forward, and its identity and result never change'); END;
"""
