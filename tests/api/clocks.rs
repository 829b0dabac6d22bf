//! One clock for every instance: the refresh grace window, measured from a
//! `rotated_at` one instance wrote and a `now` another reads, holds even
//! when the instances' machines disagree about the time; and settings that
//! meet dates never overflow them.

use chrono::TimeDelta;
use keyward::clock::Clock;
use keyward::config::RetentionSettings;

use crate::support::app::*;
use crate::support::client::*;

#[actix_web::test]
async fn instances_whose_clocks_disagree_share_one_grace_window() {
    // Arrange: two instances, the second's machine 30 s ahead; grace 2 s.
    let first = spawn_app_with(|s| s.auth.reuse_grace_seconds = 2).await;
    let ahead = spawn_on(
        first.settings.clone(),
        Clock::skewed(TimeDelta::seconds(30)),
    )
    .await;
    let user = first.register().await;
    let pair = first.login(&user).await.token_pair();
    let rt0 = pair.refresh_token.clone();

    // Act / Assert: a refresh on the first, and the same token retried at
    // once on the instance that runs ahead: a concurrent refresh, not a
    // replay.
    let won = first.refresh(&rt0).await;
    assert_eq!(won.status, 200, "{}", won.text);
    let retried = ahead.refresh(&rt0).await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(
        retried.json["refresh_token"], won.json["refresh_token"],
        "the grace answer hands back the winner's refresh token"
    );

    // The other way round: a rotation on the instance ahead, a retry on the
    // first; and once the window has passed on the one clock, a replay on
    // either instance is one.
    let rt1 = field(&won.json, "refresh_token").to_string();
    let won = ahead.refresh(&rt1).await;
    assert_eq!(won.status, 200, "{}", won.text);
    let retried = first.refresh(&rt1).await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    for app in [&first.app, &ahead] {
        app.clock.advance(TimeDelta::seconds(3));
    }
    first.refresh(&rt1).await.assert_error(401, "token_reused");
}

#[actix_web::test]
async fn a_retention_beyond_the_dates_chrono_counts_deletes_nothing_and_does_not_panic() {
    let app = spawn_app().await;
    let mut conn = app.db.connect();
    let retention = RetentionSettings {
        sessions_days: i64::MAX,
        events_days: 315_360_000,
    };

    let swept = keyward::cleanup::sweep(&mut conn, &retention, app.clock.now());

    assert_eq!(swept.unwrap(), keyward::cleanup::Swept::default());
}
