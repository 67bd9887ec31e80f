-- The single sign-on broker's OpenID provider (issue 19, decision 0045). Codes and access
-- tokens are keyed by their SHA-256, never by themselves; their grants are JSON. A code is
-- redeemed by one UPDATE of `used` (two racing redemptions cannot both see it unused) and kept,
-- used, until the tokens it was exchanged for would have expired, so a replay is recognised and
-- revokes them. The signing keys live in `secrets`, sealed.
CREATE TABLE sso_codes (
    hash TEXT PRIMARY KEY,
    grant_json TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    expires_ms BIGINT NOT NULL,
    retain_until_ms BIGINT NOT NULL
) WITHOUT ROWID;

CREATE TABLE sso_tokens (
    hash TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL,
    grant_json TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
) WITHOUT ROWID;
CREATE INDEX sso_tokens_by_code ON sso_tokens (code_hash);

-- Logins in progress at an upstream identity provider, by the SHA-256 of their state: what
-- the product asked and what the answer is checked against. Taken once (deleted when read).
CREATE TABLE sso_pending (
    state_hash TEXT PRIMARY KEY,
    upstream TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
) WITHOUT ROWID;
