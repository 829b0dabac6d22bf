//! The `services` table: the credentials of services that verify tokens.
//! Creating or deleting one writes its event and announces the change on
//! [`SERVICES_CHANNEL`] in the same statement, so every instance reloads
//! its registry.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::events::EventKind;
use super::schema::services;

/// The channel a created or deleted service is announced on (payload: its id).
pub(crate) const SERVICES_CHANNEL: &str = "keyward_services";

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = services)]
pub struct ServiceRow {
    pub(crate) id: Uuid,
    pub name: String,
    pub(crate) client_id: String,
    pub(crate) secret_hash: Vec<u8>,
    pub(crate) created_at: DateTime<Utc>,
}

/// Every service, by name.
pub(crate) fn list(conn: &mut PgConnection) -> QueryResult<Vec<ServiceRow>> {
    services::table
        .select(ServiceRow::as_select())
        .order((services::name.asc(), services::id.asc()))
        .load(conn)
}

/// Inserts a service with its `service_created` event and the
/// notification. A name taken (in any letter case) is a unique violation.
pub(crate) fn create(conn: &mut PgConnection, row: &ServiceRow) -> QueryResult<()> {
    let sql = format!(
        "WITH created AS ( \
           INSERT INTO services (id, name, client_id, secret_hash, created_at) \
           VALUES ($1, $2, $3, $4, $5) RETURNING id, name, client_id), \
         logged AS ( \
           INSERT INTO events (at, kind, detail) \
           SELECT $5, $6, jsonb_build_object('service_id', id, 'name', name, 'client_id', client_id) \
           FROM created) \
         SELECT c.id FROM created AS c \
         CROSS JOIN LATERAL (SELECT pg_notify('{SERVICES_CHANNEL}', c.id::text)) AS announced"
    );
    diesel::sql_query(sql)
        .bind::<SqlUuid, _>(row.id)
        .bind::<Text, _>(&row.name)
        .bind::<Text, _>(&row.client_id)
        .bind::<Bytea, _>(row.secret_hash.as_slice())
        .bind::<Timestamptz, _>(row.created_at)
        .bind::<Text, _>(EventKind::ServiceCreated.as_str())
        .execute(conn)
        .map(drop)
}

/// Deletes the service of this name (in any letter case) with its
/// `service_deleted` event and the notification; `None` when there is none.
pub(crate) fn delete_by_name(
    conn: &mut PgConnection,
    name: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<ServiceRow>> {
    let sql = format!(
        "WITH deleted AS ( \
           DELETE FROM services WHERE lower(name) = lower($1) \
           RETURNING id, name, client_id, secret_hash, created_at), \
         logged AS ( \
           INSERT INTO events (at, kind, detail) \
           SELECT $2, $3, jsonb_build_object('service_id', id, 'name', name, 'client_id', client_id) \
           FROM deleted) \
         SELECT d.* FROM deleted AS d \
         CROSS JOIN LATERAL (SELECT pg_notify('{SERVICES_CHANNEL}', d.id::text)) AS announced"
    );
    diesel::sql_query(sql)
        .bind::<Text, _>(name)
        .bind::<Timestamptz, _>(now)
        .bind::<Text, _>(EventKind::ServiceDeleted.as_str())
        .get_result(conn)
        .optional()
}
