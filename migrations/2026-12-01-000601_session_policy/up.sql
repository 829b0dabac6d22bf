-- Session policy and the administrators' overview (issue 16).

-- A name the user gave the session (`PATCH /auth/sessions/{id}`); NULL shows
-- the device name derived from the user agent. `last_ip`: the address the
-- session was last used from (sign-in or refresh); `ip` stays the sign-in's.
ALTER TABLE sessions ADD COLUMN name text;
ALTER TABLE sessions ADD COLUMN last_ip text;

-- Signing everyone out walks the live sessions created before a time in
-- (created_at, id) order, a batch at a time: this index finds each batch
-- without rescanning the ones already revoked (they leave the index's
-- predicate as they are revoked).
CREATE INDEX sessions_live_created ON sessions (created_at, id) WHERE revoked_at IS NULL;

-- `GET /admin/stats` counts events by hour and kind over the last hours:
-- with (at, kind) the counts are an index-only scan of that time range. It
-- replaces the index on (at) alone, which the cleanup job's `at < cutoff`
-- uses and which this one serves as well, so every event insert (one per
-- refresh) still maintains as many indexes as before.
DROP INDEX events_at;
CREATE INDEX events_at_kind ON events (at, kind);
