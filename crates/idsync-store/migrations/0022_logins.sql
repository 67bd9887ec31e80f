-- Logins (issue 19, decisions 0042 and 0043): per directory user, when idsync first counted
-- the user (its first login, or the first run of a flow with `inactive_after` that saw it)
-- and its last login. A flow's `inactive_after` deprovisions users whose last login (else
-- first count) is older than that.
CREATE TABLE user_logins (
    dir TEXT NOT NULL,
    user_key TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_login_ms BIGINT,
    PRIMARY KEY (dir, user_key)
) WITHOUT ROWID;
-- Which users logged in since a time (a source read that started before keeps their state).
CREATE INDEX user_logins_by_time ON user_logins (dir, last_login_ms);
