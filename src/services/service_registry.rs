//! Service credentials: creating, listing and deleting services (the
//! `keyward services` commands), and the in-memory registry every instance
//! checks credentials against without a database read.
//!
//! The registry is loaded at start and reloaded by the revocation listener
//! (it is a `listener::ListenHook`) when a service is created or
//! deleted (a NOTIFY on `db::services::SERVICES_CHANNEL`), on every
//! reconnect, and every two seconds as a safety net; a deleted service's secret fails on every
//! instance within a second. Open revocation streams ask `is_active`
//! (cheap: a read lock and one hash lookup).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use uuid::Uuid;

use crate::db::services::{self, ServiceRow};
use crate::domain::service_secret::{
    hash_secret, secret_matches, NewCredentials, SecretHash, ServiceName, MAX_CREDENTIAL_LEN,
};

/// A service whose credentials checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceIdentity {
    pub id: Uuid,
    pub name: String,
    pub client_id: String,
}

#[derive(Debug)]
struct Entry {
    identity: ServiceIdentity,
    secret_hash: Vec<u8>,
}

#[derive(Debug, Default)]
struct Snapshot {
    by_client_id: HashMap<String, Entry>,
    ids: HashSet<Uuid>,
}

/// The services this instance accepts, by `client_id`.
#[derive(Debug)]
pub struct ServiceRegistry {
    current: RwLock<Arc<Snapshot>>,
    /// When an unknown `client_id` last made this instance re-read the
    /// services (see [`ServiceRegistry::reload_for_unknown`]).
    unknown_reload: Mutex<Option<Instant>>,
    generation: AtomicU64,
    /// Checked against for an unknown `client_id`, so that it costs what a
    /// known one does.
    dummy_hash: SecretHash,
}

/// How often an unknown `client_id` may make an instance re-read the services.
pub(crate) const UNKNOWN_RELOAD_EVERY: Duration = Duration::from_secs(1);

impl Default for ServiceRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceRegistry {
    /// An empty registry (every credential fails until a load).
    pub(crate) fn new() -> Self {
        Self {
            current: RwLock::new(Arc::new(Snapshot::default())),
            unknown_reload: Mutex::new(None),
            generation: AtomicU64::new(0),
            dummy_hash: hash_secret("kw_unknown", "never a secret"),
        }
    }

    /// Reads every service from the database and replaces the registry;
    /// returns how many there are. On an error the registry stays as it was.
    pub fn reload(&self, conn: &mut PgConnection) -> diesel::QueryResult<usize> {
        let rows = services::list(conn)?;
        let count = rows.len();
        self.replace(rows);
        Ok(count)
    }

    /// Whether a service with this `client_id` is known here.
    pub(crate) fn knows(&self, client_id: &str) -> bool {
        self.snapshot().by_client_id.contains_key(client_id)
    }

    /// How long until an unknown `client_id` may re-read the services (see
    /// [`ServiceRegistry::reload_for_unknown`]); a caller sleeps this long
    /// first, without holding a thread.
    pub(crate) fn unknown_reload_wait(&self) -> Duration {
        match self.unknown_reload.try_lock() {
            Ok(last) => last.map_or(Duration::ZERO, |at| {
                UNKNOWN_RELOAD_EVERY.saturating_sub(at.elapsed())
            }),
            Err(_) => Duration::ZERO,
        }
    }

    /// Re-reads the services for a `client_id` this instance does not know:
    /// a service created a moment ago (on another instance, or by the
    /// command line) may not have reached the listener yet. At most once per
    /// [`UNKNOWN_RELOAD_EVERY`], so unknown ids cost the database one read a
    /// second however many arrive; a caller arriving while a read runs waits
    /// for it. Returns whether the id is known afterwards.
    pub(crate) fn reload_for_unknown(&self, client_id: &str, conn: &mut PgConnection) -> bool {
        let mut last = self
            .unknown_reload
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.knows(client_id) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_RELOAD_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.reload(conn) {
            log::warn!("cannot re-read the services for an unknown client_id: {e}");
        }
        self.knows(client_id)
    }

    /// Replaces the registry with these rows.
    pub(crate) fn replace(&self, rows: Vec<ServiceRow>) {
        let mut snapshot = Snapshot::default();
        for row in rows {
            snapshot.ids.insert(row.id);
            snapshot.by_client_id.insert(
                row.client_id.clone(),
                Entry {
                    identity: ServiceIdentity {
                        id: row.id,
                        name: row.name,
                        client_id: row.client_id,
                    },
                    secret_hash: row.secret_hash,
                },
            );
        }
        let snapshot = Arc::new(snapshot);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The service these credentials belong to, if they do. The secret is
    /// compared in constant time, and an unknown `client_id` is checked
    /// against a dummy hash, so the time taken does not tell a wrong secret
    /// from an unknown id (ids are not secret, but there is no need to
    /// confirm them either).
    pub(crate) fn authenticate(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Option<ServiceIdentity> {
        if client_id.len() > MAX_CREDENTIAL_LEN || client_secret.len() > MAX_CREDENTIAL_LEN {
            return None;
        }
        let snapshot = self.snapshot();
        match snapshot.by_client_id.get(client_id) {
            Some(entry) => secret_matches(client_id, client_secret, &entry.secret_hash)
                .then(|| entry.identity.clone()),
            None => {
                let _ = secret_matches(client_id, client_secret, &self.dummy_hash);
                None
            }
        }
    }

    /// Whether this service still exists (for open revocation streams).
    pub(crate) fn is_active(&self, id: Uuid) -> bool {
        self.snapshot().ids.contains(&id)
    }

    /// Changes at every reload.
    #[cfg(test)]
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.snapshot().ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidName(&'static str),
    #[error("a service named {0} already exists")]
    Taken(String),
    #[error("no service named {0}")]
    NotFound(String),
    #[error("no random numbers: {0}")]
    Random(getrandom::Error),
    #[error("database: {0}")]
    Store(#[from] DieselError),
}

/// Creates a service; the credentials are returned once and only their
/// hash is stored.
pub fn create(
    conn: &mut PgConnection,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(ServiceRow, NewCredentials), ServiceError> {
    let name = ServiceName::parse(name).map_err(ServiceError::InvalidName)?;
    let credentials = NewCredentials::generate().map_err(ServiceError::Random)?;
    let row = ServiceRow {
        id: Uuid::new_v4(),
        name: name.as_str().to_string(),
        client_id: credentials.client_id.clone(),
        secret_hash: credentials.hash().to_vec(),
        created_at: now,
    };
    match services::create(conn, &row) {
        Ok(()) => Ok((row, credentials)),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Err(ServiceError::Taken(row.name))
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes a service by name (any letter case); its secret stops working on
/// every instance within a second.
pub fn delete(
    conn: &mut PgConnection,
    name: &str,
    now: DateTime<Utc>,
) -> Result<ServiceRow, ServiceError> {
    services::delete_by_name(conn, name, now)?.ok_or_else(|| ServiceError::NotFound(name.into()))
}

/// Every service, by name.
pub(crate) fn list(conn: &mut PgConnection) -> Result<Vec<ServiceRow>, ServiceError> {
    Ok(services::list(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> (ServiceRow, NewCredentials) {
        let credentials = NewCredentials::generate().unwrap();
        let row = ServiceRow {
            id: Uuid::new_v4(),
            name: name.into(),
            client_id: credentials.client_id.clone(),
            secret_hash: credentials.hash().to_vec(),
            created_at: Utc::now(),
        };
        (row, credentials)
    }

    #[test]
    fn credentials_check_out_until_the_service_is_gone() {
        let registry = ServiceRegistry::new();
        let (a, a_creds) = row("a");
        let (b, b_creds) = row("b");
        registry.replace(vec![a.clone(), b.clone()]);
        let found = registry
            .authenticate(&a_creds.client_id, &a_creds.client_secret)
            .unwrap();
        assert_eq!(found.id, a.id);
        assert_eq!(found.name, "a");
        assert!(registry.is_active(a.id));
        // Another service's secret does not open this one.
        assert_eq!(
            registry.authenticate(&a_creds.client_id, &b_creds.client_secret),
            None
        );
        assert_eq!(registry.authenticate("kw_nobody", "x"), None);
        assert_eq!(
            registry.authenticate(&a_creds.client_id, &"x".repeat(10_000)),
            None
        );

        let before = registry.generation();
        registry.replace(vec![b.clone()]);
        assert_ne!(registry.generation(), before);
        assert_eq!(
            registry.authenticate(&a_creds.client_id, &a_creds.client_secret),
            None
        );
        assert!(!registry.is_active(a.id));
        assert!(registry.is_active(b.id));
        assert_eq!(registry.len(), 1);
    }
}
