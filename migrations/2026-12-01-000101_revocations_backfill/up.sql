-- Every revocation is now read from the `revocations` log alone (the
-- listener's catch-up no longer reads `sessions` and the `user_deleted`
-- events). Copy in the revocations made before the log existed, so that an
-- upgraded instance keeps refusing their access tokens.
INSERT INTO revocations (at, reason, session_id, user_id)
SELECT s.revoked_at,
       CASE s.revoked_reason
         WHEN 'revoked_by_user' THEN 'logout'
         WHEN 'admin_revoked' THEN 'admin'
         ELSE coalesce(s.revoked_reason, 'admin')
       END,
       s.id, s.user_id
FROM sessions AS s
WHERE s.revoked_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM revocations AS r WHERE r.session_id = s.id);

-- A deleted user's sessions are gone; the `user_deleted` event lists them.
INSERT INTO revocations (at, reason, session_id, user_id)
SELECT e.at, 'user_deleted', d.id::uuid, e.user_id
FROM events AS e
CROSS JOIN LATERAL jsonb_array_elements_text(e.detail -> 'sessions') AS d(id)
WHERE e.kind = 'user_deleted'
  AND jsonb_typeof(e.detail -> 'sessions') = 'array'
  AND e.at > now() - interval '1 day'
  AND NOT EXISTS (SELECT 1 FROM revocations AS r WHERE r.session_id = d.id::uuid);
