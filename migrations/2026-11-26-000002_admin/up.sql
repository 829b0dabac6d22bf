-- The administrators' user listing pages by (lower(username), id). The unique
-- index on lower(username) uses text_pattern_ops (for prefix searches), whose
-- order the planner cannot use for `ORDER BY lower(username)`: without this
-- index every page would sort the whole table.
CREATE INDEX users_username_order ON users (lower(username), id);
