-- Access control: the key that started a conversation owns it (a CLIENT key sees only its own); API keys stored
-- as the SHA-256 of their secret; an audit log of privileged actions that holds no personal data.
ALTER TABLE conversations ADD COLUMN owner TEXT;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,              -- client | agent | editor | admin
    skills      TEXT NOT NULL,              -- JSON list (agents; empty: all)
    secret_hash TEXT NOT NULL,              -- hex SHA-256 of the secret; the secret itself is never stored
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,                   -- key id
    action TEXT NOT NULL,                   -- erase_customer | create_key | revoke_key
    detail TEXT NOT NULL                    -- JSON: counts and ids of keys, never customer data
);
