-- The audit log of admin actions (who, when, what, how it ended), and secrets idsync keeps
-- sealed (XChaCha20-Poly1305 under the operator's key; nonce and ciphertext in base64).

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    via TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    ended_ms BIGINT
);

CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    sealed_ms BIGINT NOT NULL
);
