-- keyward's schema: users, their sessions (one row per sign-in), the signing
-- keys every instance shares, per-username login throttling, and the
-- append-only event log.

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    username       text        NOT NULL,
    name           text,
    password_hash  text        NOT NULL,
    admin          boolean     NOT NULL DEFAULT false,
    banned         boolean     NOT NULL DEFAULT false,
    banned_until   timestamptz,
    ban_reason     text,
    created_at     timestamptz NOT NULL,
    last_login_at  timestamptz
);
-- Usernames are unique without regard to case; the same index serves login
-- lookups and the admin's case-insensitive prefix search (text_pattern_ops
-- lets `LIKE 'abc%'` use it whatever the database's collation).
CREATE UNIQUE INDEX users_username_lower ON users (lower(username) text_pattern_ops);

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    current_jti     uuid        NOT NULL,
    previous_jti    uuid,
    rotated_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    last_used_at    timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text,
    user_agent      text,
    ip              text
);
-- A user's live sessions (listing, revoking all of them, counting).
CREATE INDEX sessions_user_live ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_user ON sessions (user_id, created_at);
-- Start-up and listener catch-up load the recently revoked sessions.
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
-- The cleanup job finds ended sessions by expiry.
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    algorithm    text        NOT NULL,
    -- HS256: the secret itself; EdDSA: the PKCS#8 private key.
    private_key  bytea       NOT NULL,
    -- EdDSA: the raw 32-byte public key; NULL for HS256.
    public_key   bytea,
    created_at   timestamptz NOT NULL,
    -- Set when a newer key took over signing; the key still verifies until
    -- every token it signed has expired.
    retired_at   timestamptz
);
CREATE INDEX signing_keys_algorithm ON signing_keys (algorithm, created_at);

CREATE TABLE login_throttle (
    username_key  text PRIMARY KEY,
    failures      integer     NOT NULL,
    last_failure  timestamptz NOT NULL,
    locked_until  timestamptz
);

CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    kind        text        NOT NULL,
    user_id     uuid,
    session_id  uuid,
    actor_id    uuid,
    ip          text,
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX events_user ON events (user_id, id);
CREATE INDEX events_at ON events (at);
