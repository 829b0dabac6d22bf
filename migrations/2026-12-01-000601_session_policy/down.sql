DROP INDEX events_at_kind;
CREATE INDEX events_at ON events (at);
DROP INDEX sessions_live_created;
ALTER TABLE sessions DROP COLUMN last_ip;
ALTER TABLE sessions DROP COLUMN name;
