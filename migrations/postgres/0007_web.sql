-- Secrets this deployment makes for itself on first start: the key conversation tokens are signed with
-- (src/widget.rs). In the database, so every replica of one deployment signs and checks alike.
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY NOT NULL,   -- conversation_tokens
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
