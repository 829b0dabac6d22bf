-- Signing keys that are published before they sign, and keys revoked by
-- hand (API.md section 5, signing keys).
--
-- signs_from: when the key starts signing. `keys rotate` sets it
-- `auth.key_publish_seconds` ahead, so that verifiers caching the JWKS have
-- the key before any token names it; until then the key is "next" (published,
-- verifying, not signing). Each instance picks the newest key whose
-- signs_from has come, so the switch needs no notification.
--
-- retired_at: when a newer key took over signing (it may be in the future,
-- at the newer key's signs_from). The key verifies until every token it
-- signed has expired after that, then the cleanup deletes it.
--
-- revoked_at: `keys revoke` stops the key verifying at once, everywhere; the
-- revocations table carries (kid, 'key_revoked') for other services.
ALTER TABLE signing_keys
    ADD COLUMN signs_from timestamptz,
    ADD COLUMN revoked_at timestamptz;
UPDATE signing_keys SET signs_from = created_at;
ALTER TABLE signing_keys ALTER COLUMN signs_from SET NOT NULL;
