ALTER TABLE signing_keys DROP COLUMN signs_from, DROP COLUMN revoked_at;
