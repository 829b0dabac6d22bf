-- `GET /admin/stats`'s hourly counts, kept for every completed hour (issue
-- 16). Events are appended at the time they happen, so an hour's counts no
-- longer change once the hour has ended (and a margin has passed for
-- transactions that took their time before commit): counting it again on
-- every request, over a table of millions of events, is wasted work.
--
-- Filled by the cleanup job and, for hours it has not reached yet, by the
-- stats query itself, one hour per `INSERT … ON CONFLICT DO NOTHING`
-- statement: instances rolling up the same hour at once compute the same row,
-- and the first to commit wins. No trigger on `events`: that would add work
-- to every refresh. A row of zeros is an hour rolled up with nothing in it.
--
-- A rolled-up hour keeps its counts after the retention cleanup has deleted
-- its events.
CREATE TABLE event_hours (
    -- The hour's start, on the hour in UTC.
    hour timestamptz PRIMARY KEY,
    logins bigint NOT NULL,
    failed_logins bigint NOT NULL,
    refreshes bigint NOT NULL,
    reuse_detected bigint NOT NULL,
    revocations bigint NOT NULL
);
