//! A database of the benchmark's own on the PostgreSQL server, dropped (with
//! `FORCE`) when it goes out of scope, also when a panic unwinds. Shared by
//! the load and the policy benchmarks.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection;
use uuid::Uuid;

pub(crate) struct BenchDb {
    admin_url: String,
    pub(crate) name: String,
}

impl BenchDb {
    /// Creates `<prefix>_<random>` on the server at `postgres` (a URL
    /// without a database).
    pub(crate) fn create(postgres: &str, prefix: &str) -> Self {
        let admin_url = format!("{postgres}/postgres");
        let name = format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let mut admin = PgConnection::establish(&admin_url).expect("connect to PostgreSQL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the bench database");
        Self { admin_url, name }
    }

    pub(crate) fn url(&self) -> String {
        let base = self.admin_url.trim_end_matches("/postgres");
        format!("{base}/{}", self.name)
    }

    pub(crate) fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url()).expect("connect to the bench database")
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        match PgConnection::establish(&self.admin_url).and_then(|mut admin| {
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
        }) {
            Ok(()) => eprintln!("dropped database {}", self.name),
            Err(e) => eprintln!("could not drop database {}: {e}", self.name),
        }
    }
}
