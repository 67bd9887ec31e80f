-- Crowd-compatible served directories (issue 17, decision 0031).
-- The applications (Jira, Confluence, ...) that read a crowd target: a name, the argon2id hash
-- of its password (the password itself is shown once and never stored), and the remote
-- addresses it may call from (a JSON array of addresses or CIDR ranges; empty: any).
CREATE TABLE crowd_apps (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    allow TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT,
    revoked_ms BIGINT
);
-- One live application per name and target (a revoked name may be created again).
CREATE UNIQUE INDEX crowd_apps_live ON crowd_apps (target, name) WHERE revoked_ms IS NULL;

-- The event feed of each crowd target: the changes of the ledger of the flow that feeds it,
-- written in the transaction that changes the ledger. Positions only grow; `epoch` changes
-- when the log restarts (the ledger replaced wholesale, another flow feeding the target), and
-- `first_seq` moves on when old events are purged: tokens from before either answer
-- "expired" and the product synchronises fully.
CREATE TABLE crowd_event_logs (
    target TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    epoch TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL
);
CREATE TABLE crowd_events (
    target TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (target, seq)
);
