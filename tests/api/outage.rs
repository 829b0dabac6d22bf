//! The database going away: a proxy the test cuts gives quick 503s while
//! access tokens keep answering, and everything recovers without loss once
//! it is restored; a statement past the pool's timeout is "unavailable" too.

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::proxy::{pg_address, through_proxy, Proxy};

#[actix_web::test]
async fn a_database_outage_gives_quick_503s_and_recovers_without_loss() {
    let proxy = Proxy::start(pg_address());
    let app = spawn_app_with(|s| through_proxy(s, &proxy)).await;
    let timeout = Duration::from_millis(500);

    // Arrange: a user with two sessions, one of them refreshed.
    let user = app.register().await;
    let first = app.login(&user).await.token_pair();
    let second = app.login(&user).await.token_pair();
    let r = app.refresh(first.refresh_token.as_str()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let first_rt = field(&r.json, "refresh_token").to_string();
    let first_at = field(&r.json, "access_token").to_string();
    let second_rt = second.refresh_token.clone();
    let sessions_of_user = format!(
        "SELECT count(*) FROM sessions WHERE user_id = '{}'",
        user.id
    );
    assert_eq!(query_i64(&app.db, &sessions_of_user), 2);
    eventually(Duration::from_secs(5), || async {
        app.get("/ready", None).await.status == 200
    })
    .await
    .expect("ready before the outage");

    // A query in flight when the database goes away: it must end with an
    // error the service maps to "unavailable", not hang.
    let pool = app.state.pool.clone();
    let in_flight = std::thread::spawn(move || {
        let mut conn = pool.get().unwrap();
        let started = Instant::now();
        let outcome = diesel::sql_query("SELECT pg_sleep(30)").execute(&mut conn);
        (outcome, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));

    // Act: cut the database off.
    let cut_at = Instant::now();
    proxy.cut();
    let (outcome, in_flight_took) = in_flight.join().unwrap();
    let error = outcome.expect_err("the query cannot finish without the database");
    assert!(
        matches!(
            keyward::db::StoreError::from(error),
            keyward::db::StoreError::Unavailable(_)
        ),
        "a connection lost mid-query is 'unavailable'"
    );
    assert!(
        in_flight_took < Duration::from_secs(5),
        "{in_flight_took:?}"
    );
    let credentials = json!({"username": user.username, "password": user.password});
    let started = Instant::now();
    let r = app.post_json("/auth/login", &credentials, None).await;
    let login_503 = started.elapsed();
    let time_to_503 = cut_at.elapsed();
    r.assert_error(503, "unavailable");
    assert!(r.header("retry-after").is_some(), "503 carries Retry-After");

    let started = Instant::now();
    let r = app.refresh(&first_rt).await;
    let refresh_503 = started.elapsed();
    r.assert_error(503, "unavailable");
    assert!(r.header("retry-after").is_some());

    let started = Instant::now();
    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "during_outage", "password": "long enough"}),
            None,
        )
        .await;
    let register_503 = started.elapsed();
    r.assert_error(503, "unavailable");

    let started = Instant::now();
    let r = app.get("/ready", None).await;
    let ready_503 = started.elapsed();
    r.assert_error(503, "unavailable");
    assert!(r.header("retry-after").is_some());

    // Access tokens still answer from the token alone, at once.
    let started = Instant::now();
    let r = app.get("/api/me", Some(&first_at)).await;
    let me_ok = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["username"], user.username.as_str());
    assert_eq!(app.get("/health", None).await.status, 200);

    // Every database route answered within about the checkout timeout.
    let slack = Duration::from_millis(1500);
    for (what, took) in [
        ("login", login_503),
        ("refresh", refresh_503),
        ("register", register_503),
        ("ready", ready_503),
    ] {
        assert!(took < timeout + slack, "{what} took {took:?}");
    }
    assert!(me_ok < Duration::from_millis(500), "/api/me took {me_ok:?}");

    // Restore: everything recovers without a restart.
    let restored_at = Instant::now();
    proxy.restore();
    let to_login = eventually(Duration::from_secs(15), || async {
        app.post_json("/auth/login", &credentials, None)
            .await
            .status
            == 200
    })
    .await
    .expect("login recovers");
    let to_ready = eventually(Duration::from_secs(15), || async {
        app.get("/ready", None).await.status == 200
    })
    .await
    .expect("/ready recovers");
    let recovered = restored_at.elapsed();
    // The refresh token that failed during the outage was never rotated away.
    let r = app.refresh(&first_rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.refresh(&second_rt).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // No session was lost or duplicated: the two from before, plus the one
    // login that succeeded after the restore.
    assert_eq!(query_i64(&app.db, &sessions_of_user), 3);
    assert_eq!(
        query_i64(
            &app.db,
            "SELECT count(*) FROM users WHERE username = 'during_outage'"
        ),
        0
    );
    assert_eq!(
        query_i64(
            &app.db,
            &format!(
                "SELECT count(*) FROM sessions WHERE user_id = '{}' AND revoked_at IS NOT NULL",
                user.id
            )
        ),
        0
    );

    eprintln!(
        "outage timeline (connect_timeout_ms = 500): cut -> first 503 {time_to_503:?} \
         (login {login_503:?}, refresh {refresh_503:?}, register {register_503:?}, \
         /ready {ready_503:?}; /api/me 200 in {me_ok:?}; a query in flight failed after \
         {in_flight_took:?}); restore -> login 200 in {to_login:?}, \
         /ready 200 {to_ready:?} later; recovered {recovered:?} after the restore"
    );
}

#[actix_web::test]
async fn pooled_connections_carry_a_statement_timeout() {
    let app = spawn_app().await;
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement_timeout: String,
    }
    let mut conn = app.state.pool.get().unwrap();
    let shown = diesel::sql_query("SHOW statement_timeout")
        .get_result::<Setting>(&mut conn)
        .unwrap();
    assert_eq!(shown.statement_timeout, "5s");
    // A statement past it ends as "unavailable" (a 503), not as a 500.
    diesel::sql_query("SET statement_timeout = 50")
        .execute(&mut conn)
        .unwrap();
    let error = diesel::sql_query("SELECT pg_sleep(1)")
        .execute(&mut conn)
        .unwrap_err();
    assert!(matches!(
        keyward::db::StoreError::from(error),
        keyward::db::StoreError::Unavailable(_)
    ));
    diesel::sql_query("SET statement_timeout = 5000")
        .execute(&mut conn)
        .unwrap();
}
