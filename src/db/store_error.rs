//! How a failed query or checkout reaches the services: retry later, or
//! not at all.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::pool::{connection_lost, pool_exhausted};

/// A failure of the store, as the services see it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached in time (pool timeout, lost
    /// connection): the client may retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(DieselError),
}

/// libpq's and the server's words for a connection that is gone or a
/// statement cut short by `statement_timeout`: the client may retry, and the
/// connection is not handed out again (see `pool::Manager`).
const CONNECTION_LOST: &[&str] = &[
    "terminating connection",
    "server closed the connection",
    "no connection to the server",
    "could not receive data from server",
    "could not send data to server",
    "connection to server",
    "SSL connection has been closed unexpectedly",
    "canceling statement due to statement timeout",
];

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::BrokenTransactionManager => {
                connection_lost();
                Self::Unavailable(e.to_string())
            }
            DieselError::DatabaseError(_, info)
                if CONNECTION_LOST.iter().any(|m| info.message().contains(m)) =>
            {
                connection_lost();
                Self::Unavailable(e.to_string())
            }
            _ => Self::Query(e),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        pool_exhausted();
        Self::Unavailable(e.to_string())
    }
}
