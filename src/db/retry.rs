//! Retrying a transaction that lost a lock conflict.
//!
//! Transactions that lock several rows can still meet in a cycle (two
//! revocations of one user's sessions while a refresh moves a row, say):
//! PostgreSQL then aborts one with "deadlock detected", or, under stricter
//! isolation, a serialization failure. Neither is the client's fault, and
//! the transaction would succeed when run again, so it is, a bounded number
//! of times, instead of answering `500`.

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::pg::PgConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Connection;

/// How many times a transaction runs at most.
pub(crate) const ATTEMPTS: usize = 3;

/// An error that may be a lost lock conflict.
pub(crate) trait Conflict: From<DieselError> {
    /// A deadlock or a serialization failure: running again may succeed.
    fn is_conflict(&self) -> bool;
}

impl Conflict for DieselError {
    fn is_conflict(&self) -> bool {
        match self {
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
            // diesel names no kind for SQLSTATE 40P01; the server's message
            // (in its default `lc_messages`) is this.
            DieselError::DatabaseError(_, info) => info.message().contains("deadlock detected"),
            _ => false,
        }
    }
}

/// Runs `f` in a transaction, again (up to [`ATTEMPTS`] in all) while it
/// fails with a lock conflict. Inside an enclosing transaction it runs once:
/// the conflict aborted the enclosing one too, which is retried (if at all)
/// where it began.
pub(crate) fn transaction<T, E: Conflict>(
    conn: &mut PgConnection,
    mut f: impl FnMut(&mut PgConnection) -> Result<T, E>,
) -> Result<T, E> {
    let nested = AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .is_ok_and(|depth| depth.is_some());
    let mut attempt = 1;
    loop {
        match conn.transaction(&mut f) {
            Err(e) if !nested && attempt < ATTEMPTS && e.is_conflict() => {
                log::warn!(
                    "a transaction lost a lock conflict; running it again (attempt {attempt})"
                );
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}
