-- SCIM push endpoint: bearer tokens per directory (only a hash is kept), and object timestamps
-- for SCIM meta.created / meta.lastModified.

CREATE TABLE scim_tokens (
    id TEXT PRIMARY KEY,
    dir TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT,
    revoked_ms BIGINT
);
CREATE INDEX scim_tokens_by_dir ON scim_tokens (dir);

ALTER TABLE users ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN modified_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE groups_ ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE groups_ ADD COLUMN modified_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX users_by_lower_name ON users (dir, lower(user_name));
CREATE INDEX groups_by_lower_name ON groups_ (dir, lower(display_name));
