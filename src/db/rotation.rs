//! Rotating refresh tokens: one compare-and-swap `UPDATE` of the session
//! rows, for one rotation or for a batch of them (see
//! `rotation_queue`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Double, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// The new state one rotation writes.
#[derive(Debug, Clone)]
pub(crate) struct Rotation {
    pub(crate) session_id: Uuid,
    pub(crate) presented_jti: Uuid,
    pub(crate) new_jti: Uuid,
    /// When it happens, in whole seconds: the new `rotated_at`, and the
    /// refresh token's `iat`.
    pub(crate) now: DateTime<Utc>,
    /// The client's address, for the session's `last_ip` and the event.
    pub(crate) ip: Option<String>,
}

/// What a successful rotation returns: enough to sign the new pair without
/// another query.
#[derive(Debug, QueryableByName)]
pub(crate) struct Rotated {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) session_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub(crate) user_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) expires_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub(crate) username: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) name: Option<String>,
    #[diesel(sql_type = Bool)]
    pub(crate) admin: bool,
}

/// The lifetimes every rotation applies (`auth.refresh_ttl_seconds`,
/// `auth.session_max_seconds`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetimes {
    pub(crate) refresh_ttl_seconds: i64,
    pub(crate) session_max_seconds: i64,
}

/// Rotates each session of `rotations` in one statement, each row by its own
/// compare-and-swap: it applies only while the presented `jti` is still the
/// current one, the session is live and its user not banned. Returns the
/// rotations that applied, by `session_id`; a session must appear at most
/// once in `rotations` (a second one would lose its swap to the first).
/// Reading first and writing after would let two callers both "win" with
/// the same token; a caller whose rotation did not apply works out why from
/// a fresh read.
///
/// The `refreshed` events are written by the same statement, so the events
/// cannot be lost or half-written.
pub(crate) fn rotate(
    conn: &mut PgConnection,
    rotations: &[Rotation],
    lifetimes: Lifetimes,
) -> QueryResult<Vec<Rotated>> {
    if rotations.is_empty() {
        return Ok(Vec::new());
    }
    RotateStatement {
        session_ids: rotations.iter().map(|r| r.session_id).collect(),
        presented_jtis: rotations.iter().map(|r| r.presented_jti).collect(),
        new_jtis: rotations.iter().map(|r| r.new_jti).collect(),
        nows: rotations.iter().map(|r| r.now).collect(),
        ips: rotations.iter().map(|r| r.ip.clone()).collect(),
        refresh_ttl_seconds: lifetimes.refresh_ttl_seconds as f64,
        session_max_seconds: lifetimes.session_max_seconds as f64,
    }
    .load(conn)
}

/// The rotation statement; `$1` … `$5` are arrays with one element per
/// rotation (session, presented `jti`, new `jti`, time, client address),
/// `$6` and `$7` the lifetimes in seconds.
///
/// The `refreshed` event of each rotated row is written by the same
/// statement, at every rotation: logging it costs the statement a share of
/// its throughput at the database, but none that shows end to end (the load
/// benchmark runs the raw statement with and without it).
pub const ROTATE_SQL: &str = "WITH presented AS ( \
       SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::text[]) \
         AS p(session_id, presented_jti, new_jti, at, ip)), \
     rotated AS (UPDATE sessions AS s \
       SET previous_jti = s.current_jti, current_jti = p.new_jti, rotated_at = p.at, \
           last_used_at = p.at, last_ip = COALESCE(p.ip, s.last_ip), \
           expires_at = LEAST(p.at + make_interval(secs => $6), \
                              s.created_at + make_interval(secs => $7)) \
       FROM presented AS p, users AS u \
       WHERE s.id = p.session_id AND s.current_jti = p.presented_jti \
         AND s.revoked_at IS NULL AND s.expires_at > p.at AND u.id = s.user_id \
         AND NOT (u.banned AND (u.banned_until IS NULL OR u.banned_until > p.at)) \
       RETURNING s.id, s.user_id, s.expires_at, s.created_at, u.username, u.name, u.admin, \
                 p.at, p.ip), \
     logged AS (INSERT INTO events (at, kind, user_id, session_id, ip) \
       SELECT at, 'refreshed', user_id, id, ip FROM rotated) \
     SELECT id AS session_id, user_id, expires_at, created_at, username, name, admin FROM rotated";

/// [`ROTATE_SQL`] as a query with a static id, so that diesel prepares it
/// once per connection. Diesel never caches a `sql_query` (its text could
/// be anything), and PostgreSQL spends more on parsing and planning this
/// statement than on running it.
struct RotateStatement {
    session_ids: Vec<Uuid>,
    presented_jtis: Vec<Uuid>,
    new_jtis: Vec<Uuid>,
    nows: Vec<DateTime<Utc>>,
    ips: Vec<Option<String>>,
    refresh_ttl_seconds: f64,
    session_max_seconds: f64,
}

/// The statement cache's key for [`RotateStatement`].
struct RotateStatementId;

impl diesel::query_builder::QueryId for RotateStatement {
    type QueryId = RotateStatementId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for RotateStatement {
    type SqlType = diesel::sql_types::Untyped;
}

impl<Conn> RunQueryDsl<Conn> for RotateStatement {}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for RotateStatement {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        // Each `$n` of the text becomes a bind of the n-th field (diesel
        // numbers the placeholders itself, so a repeated one is bound again).
        let mut rest = ROTATE_SQL;
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            match &rest[at + 1..at + 1 + digits] {
                "1" => out.push_bind_param::<Array<SqlUuid>, _>(&self.session_ids)?,
                "2" => out.push_bind_param::<Array<SqlUuid>, _>(&self.presented_jtis)?,
                "3" => out.push_bind_param::<Array<SqlUuid>, _>(&self.new_jtis)?,
                "4" => out.push_bind_param::<Array<Timestamptz>, _>(&self.nows)?,
                "5" => out.push_bind_param::<Array<Nullable<Text>>, _>(&self.ips)?,
                "6" => out.push_bind_param::<Double, _>(&self.refresh_ttl_seconds)?,
                "7" => out.push_bind_param::<Double, _>(&self.session_max_seconds)?,
                other => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        format!("rotation statement: no parameter ${other}").into(),
                    ))
                }
            }
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ROTATE_SQL;
    use crate::db::events::EventKind;

    #[test]
    fn the_rotation_logs_a_refreshed_event() {
        let kind = format!("'{}'", EventKind::Refreshed.as_str());
        assert!(ROTATE_SQL.contains(&kind), "{ROTATE_SQL}");
    }
}
