-- User attributes a target refused (a 400 naming an attribute idsync sent, e.g. emails.primary)
-- and is no longer sent: later runs leave them out from the start. Issue 16, decision 0026.
CREATE TABLE target_omissions (
    target TEXT NOT NULL,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    learned_ms BIGINT NOT NULL,
    PRIMARY KEY (target, path)
);
