//! Test databases: a migrated template built once per migration set, cloned
//! for each test and dropped after it; the maintenance connection; and the
//! query helpers tests use to arrange and inspect rows.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::OnceLock;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// The server every test database lives on.
pub fn pg_base() -> String {
    std::env::var("KEYWARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// Serialises template creation and cloning across test processes.
const TEMPLATE_LOCK: i64 = 0x6b77_7465_7374;

pub fn maintenance() -> PgConnection {
    PgConnection::establish(&format!("{}/postgres", pg_base()))
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (see README)")
}

/// The template's name changes whenever a migration does.
fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut hasher = DefaultHasher::new();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<_> = walk(&dir);
        files.sort();
        for file in files {
            file.hash(&mut hasher);
            std::fs::read(&file).unwrap().hash(&mut hasher);
        }
        format!("keyward_tpl_{:016x}", hasher.finish())
    })
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub fn database_exists(conn: &mut PgConnection, name: &str) -> bool {
    keyward::db::database_exists(conn, name).unwrap()
}

fn stale_templates(conn: &mut PgConnection, current: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'keyward\\_tpl\\_%' AND datname <> $1",
    )
    .bind::<diesel::sql_types::Text, _>(current)
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.datname)
    .collect()
}

/// A database of its own for one test, dropped (with any connections left)
/// when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> Self {
        let template = template_name();
        let name = format!("keyward_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = maintenance();
        conn.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
            .unwrap();
        if !database_exists(&mut conn, template) {
            // Templates of earlier migrations are of no more use.
            for stale in stale_templates(&mut conn, template) {
                let _ =
                    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {stale} WITH (FORCE)"));
            }
            conn.batch_execute(&format!("CREATE DATABASE {template}"))
                .unwrap();
            keyward::db::prepare_database(&format!("{}/{template}", pg_base())).unwrap();
        }
        let cloned = conn.batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY"
        ));
        conn.batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
            .unwrap();
        cloned.unwrap();
        let url = format!("{}/{name}", pg_base());
        Self { name, url }
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }

    /// Runs SQL against this database (arrange steps the API cannot do).
    pub fn exec(&self, sql: &str) {
        self.connect().batch_execute(sql).unwrap();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&format!("{}/postgres", pg_base())) {
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Inserts a user straight into the database (no password works for it);
/// returns its id.
pub fn insert_user(db: &TestDb, username: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    db.exec(&format!(
        "INSERT INTO users (id, username, password_hash, created_at) \
         VALUES ('{id}', '{username}', 'not-a-hash', now())"
    ));
    id
}

/// The single `bigint` a query returns (`SELECT count(*) …`).
pub fn query_i64(db: &TestDb, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(format!("SELECT ({sql}) AS value"))
        .get_result::<Value>(&mut db.connect())
        .unwrap()
        .value
}

/// The text column `value` of every row a query returns (NULL as "NULL").
pub fn query_texts(db: &TestDb, sql: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        value: Option<String>,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(sql)
        .load::<Row>(&mut db.connect())
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap_or_else(|| "NULL".into()))
        .collect()
}
