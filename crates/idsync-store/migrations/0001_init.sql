-- idsync store schema, version 1. Portable SQL: SQLite and PostgreSQL share it.

CREATE TABLE directories (
    name TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE users (
    dir TEXT NOT NULL,
    source_id TEXT NOT NULL,
    id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (dir, source_id)
);
CREATE INDEX users_by_name ON users (dir, user_name);

CREATE TABLE groups_ (
    dir TEXT NOT NULL,
    source_id TEXT NOT NULL,
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (dir, source_id)
);

CREATE TABLE memberships (
    dir TEXT NOT NULL,
    group_id TEXT NOT NULL,
    member_kind TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (dir, group_id, member_kind, member_id)
);
CREATE INDEX memberships_by_member ON memberships (dir, member_kind, member_id);

CREATE TABLE change_log (
    dir TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    object_key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (dir, seq)
);

CREATE TABLE source_cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);

CREATE TABLE flows (
    name TEXT PRIMARY KEY,
    dir TEXT NOT NULL,
    cursor BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE ledger_users (
    flow TEXT NOT NULL,
    key TEXT NOT NULL,
    target_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (flow, key)
);

CREATE TABLE ledger_groups (
    flow TEXT NOT NULL,
    key TEXT NOT NULL,
    target_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (flow, key)
);

CREATE TABLE ledger_members (
    flow TEXT NOT NULL,
    group_key TEXT NOT NULL,
    user_key TEXT NOT NULL,
    PRIMARY KEY (flow, group_key, user_key)
);
CREATE INDEX ledger_members_by_user ON ledger_members (flow, user_key);

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    trigger TEXT NOT NULL,
    mode TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    ended_ms BIGINT,
    status TEXT NOT NULL,
    counts TEXT NOT NULL,
    error TEXT,
    dry_run BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_flow ON runs (flow, started_ms);
CREATE INDEX runs_by_start ON runs (started_ms);

CREATE TABLE run_ops (
    run_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    key TEXT NOT NULL,
    object TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    before_ TEXT,
    after_ TEXT,
    changed TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, n)
);
