-- Every notification idsync sent or tried to send: what about, to where, and how it went.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms BIGINT NOT NULL,
    event TEXT NOT NULL,
    flow TEXT NOT NULL,
    run_id TEXT,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    subject TEXT NOT NULL,
    ok BIGINT NOT NULL,
    error TEXT
);
CREATE INDEX notifications_by_time ON notifications (at_ms);
