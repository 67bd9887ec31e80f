-- Lookups the SCIM endpoint answers without scanning the directory: users by externalId (how
-- Entra matches) and by any of their emails (how Atlassian Cloud matches).
ALTER TABLE users ADD COLUMN external_id TEXT;
UPDATE users SET external_id = json_extract(data, '$.externalId');
CREATE INDEX users_by_external_id ON users (dir, external_id);

CREATE TABLE user_emails (
    dir TEXT NOT NULL,
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    PRIMARY KEY (dir, user_id, email)
);
INSERT OR IGNORE INTO user_emails (dir, user_id, email)
    SELECT u.dir, u.source_id, lower(json_extract(e.value, '$.value'))
    FROM users u, json_each(u.data, '$.emails') e
    WHERE json_extract(e.value, '$.value') IS NOT NULL;
CREATE INDEX user_emails_by_email ON user_emails (dir, email);
