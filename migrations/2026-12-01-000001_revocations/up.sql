-- The revocation log: one ordered, append-only feed of every revocation,
-- shared by all instances (API.md section 7). It outlives the sessions it
-- names (a deleted user's sessions are gone, their revocations stay for the
-- horizon), and holds the two kinds of entry that are not one session:
-- "every token whose auth_time is before T" and "every token signed by KID".
--
-- Ordering: `id` comes from a sequence, and sequence values commit out of
-- order (a transaction holding 41 can commit after 42 was read), so "after
-- id 42" can silently lose 41. `tx` is the writing transaction's id: every
-- transaction older than a reader's snapshot xmin has finished, so a reader
-- that has seen every row with `tx` below its snapshot's xmin may resume from
-- that xmin and never skip a row (it may see a few twice).
CREATE TABLE revocations (
    id           bigserial   PRIMARY KEY,
    -- pg_current_xact_id() as a bigint (an xid8 is a 64-bit counter that never
    -- wraps): compare with pg_snapshot_xmin(pg_current_snapshot())::text::bigint.
    tx           bigint      NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    at           timestamptz NOT NULL,
    reason       text        NOT NULL,
    -- One session ended (logout, admin, ban, reuse, password change, ...).
    session_id   uuid,
    user_id      uuid,
    -- Signing everyone out: every access token with auth_time < auth_before.
    auth_before  timestamptz,
    -- A leaked signing key: every token it signed.
    kid          text,
    CHECK (num_nonnulls(session_id, auth_before, kid) = 1)
);
CREATE INDEX revocations_tx ON revocations (tx);
CREATE INDEX revocations_at ON revocations (at);
