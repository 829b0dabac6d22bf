//! Following keyward's revocation feed (`GET /revocations/stream`, API.md
//! section 7): one long-lived server-sent-events connection, resumed by
//! cursor (`Last-Event-ID`) after any failure, feeding the in-memory set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CACHE_CONTROL};
use tokio::sync::oneshot;

use crate::claims::AccessClaims;
use crate::error::ConnectError;
use crate::revocations::{FeedSet, Reason, Revocation};
use crate::sse::{Item, Parser};

/// A reset's entries come in one burst: a pause this long ends it.
const SETTLE_PAUSE: Duration = Duration::from_millis(100);
/// keyward sends a heartbeat at least every 15 s: a connection silent for
/// longer than this is dead, even if TCP has not noticed.
const SILENCE_LIMIT: Duration = Duration::from_secs(20);
/// Reconnection delays: from the first, doubling up to the last. The longest
/// stays under a second so that a restarted keyward is found again quickly.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_millis(1000);
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Where and as whom to follow the feed.
pub(crate) struct FeedConfig {
    pub http: reqwest::Client,
    pub url: reqwest::Url,
    pub client_id: String,
    pub client_secret: String,
    /// How long an entry can matter: the longest token lifetime plus leeway.
    pub horizon: Duration,
}

/// What the follower shares with the verifier.
pub(crate) struct Feed {
    set: RwLock<FeedSet>,
    /// When the feed was last heard from, in milliseconds since `born`: an
    /// atomic, since every verification reads it.
    heard_ms: AtomicU64,
    born: Instant,
    cursor: Mutex<Option<String>>,
    stats: Mutex<Stats>,
}

#[derive(Debug, Default, Clone)]
struct Stats {
    connected: bool,
    connections: u64,
    resets: u64,
    last_error: Option<String>,
}

/// A snapshot of the feed's state, for health checks and metrics.
#[derive(Debug, Clone)]
pub struct FeedStatus {
    /// Whether the stream is connected now.
    pub connected: bool,
    /// How long ago the feed was last heard from (an event or a heartbeat).
    pub silent_for: Duration,
    /// How many entries the revocation set holds.
    pub entries: usize,
    /// The cursor a reconnection resumes from.
    pub cursor: Option<String>,
    /// How many times the stream has been (re)connected.
    pub connections: u64,
    /// How many `reset`s keyward has sent (the first connection's included).
    pub resets: u64,
    /// The last failure of the connection, if any.
    pub last_error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Feed {
    pub fn new() -> Self {
        Self {
            set: RwLock::default(),
            heard_ms: AtomicU64::new(0),
            born: Instant::now(),
            cursor: Mutex::default(),
            stats: Mutex::default(),
        }
    }

    pub fn revokes(&self, claims: &AccessClaims, kid: &str) -> Option<Reason> {
        self.set
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .revokes(claims, Some(kid))
    }

    pub fn silent_for(&self) -> Duration {
        let heard = Duration::from_millis(self.heard_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(heard)
    }

    pub fn status(&self) -> FeedStatus {
        let stats = lock(&self.stats).clone();
        FeedStatus {
            connected: stats.connected,
            silent_for: self.silent_for(),
            entries: self.write_set().len(),
            cursor: lock(&self.cursor).clone(),
            connections: stats.connections,
            resets: stats.resets,
            last_error: stats.last_error,
        }
    }

    fn write_set(&self) -> std::sync::RwLockWriteGuard<'_, FeedSet> {
        self.set.write().unwrap_or_else(|e| e.into_inner())
    }

    fn heard_now(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Applies one item of the stream; returns whether a reset settled.
    fn apply(&self, item: Item) -> bool {
        match item {
            Item::Comment => self.write_set().settle(),
            Item::Event { name, data, id } => {
                match name.as_str() {
                    "reset" => {
                        self.write_set().begin_reset();
                        lock(&self.stats).resets += 1;
                    }
                    "revoked" => match serde_json::from_str::<Revocation>(&data) {
                        Ok(entry) => self.write_set().insert(entry),
                        Err(e) => log::warn!("keyward-verify: skipping a feed entry ({e}): {data}"),
                    },
                    _ => {}
                }
                if let Some(id) = id.filter(|id| !id.is_empty()) {
                    *lock(&self.cursor) = Some(id);
                }
                false
            }
        }
    }

    fn prune(&self, horizon: Duration) {
        let oldest = crate::unix_now() - horizon.as_secs() as i64;
        let dropped = self.write_set().prune(oldest);
        if dropped > 0 {
            log::debug!("keyward-verify: pruned {dropped} expired revocations");
        }
    }
}

/// How one connection ended.
enum End {
    InvalidClient,
    /// A 4xx answer other than 401 and 429: not the feed, or not for us.
    Refused(u16),
    Failed(String),
}

/// Follows the feed for as long as the verifier lives. `ready` is answered
/// once the first set has arrived (or the credentials were refused).
pub(crate) async fn follow(
    feed: std::sync::Arc<Feed>,
    config: FeedConfig,
    mut ready: Option<oneshot::Sender<Result<(), ConnectError>>>,
) {
    let mut delay = FIRST_RETRY;
    loop {
        let heard_before = lock(&feed.stats).connections;
        let end = connect_once(&feed, &config, &mut ready).await;
        {
            let mut stats = lock(&feed.stats);
            stats.connected = false;
            stats.last_error = Some(match &end {
                End::InvalidClient => "keyward refused the service credentials".to_string(),
                End::Refused(status) => format!("the feed answered {status}"),
                End::Failed(why) => why.clone(),
            });
            // A connection that got through starts the delays over.
            if stats.connections > heard_before {
                delay = FIRST_RETRY;
            }
        }
        feed.write_set().abandon_reset();
        // Before the first set, a definite refusal ends `connect` at once.
        let fatal = match end {
            End::InvalidClient => Some(ConnectError::InvalidClient),
            End::Refused(status) => Some(ConnectError::Fetch {
                what: "the revocation feed",
                detail: format!("status {status}"),
            }),
            End::Failed(_) => None,
        };
        if let Some(error) = fatal {
            log::warn!("keyward-verify: the revocation feed refused us: {error}");
            if let Some(ready) = ready.take() {
                let _ = ready.send(Err(error));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(LAST_RETRY);
    }
}

async fn connect_once(
    feed: &Feed,
    config: &FeedConfig,
    ready: &mut Option<oneshot::Sender<Result<(), ConnectError>>>,
) -> End {
    let mut request = config
        .http
        .get(config.url.clone())
        .basic_auth(&config.client_id, Some(&config.client_secret))
        .header(ACCEPT, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache");
    if let Some(cursor) = lock(&feed.cursor).clone() {
        request = request.header("Last-Event-ID", cursor);
    }
    let mut response = match tokio::time::timeout(SILENCE_LIMIT, request.send()).await {
        Err(_) => return End::Failed("the feed did not answer in time".into()),
        Ok(Err(e)) => return End::Failed(format!("cannot reach the feed: {e}")),
        Ok(Ok(r)) => r,
    };
    match response.status().as_u16() {
        200 => {}
        401 => return End::InvalidClient,
        status @ (400..=428 | 430..=499) => return End::Refused(status),
        other => return End::Failed(format!("the feed answered {other}")),
    }
    feed.heard_now();
    {
        let mut stats = lock(&feed.stats);
        stats.connected = true;
        stats.connections += 1;
    }
    let mut parser = Parser::default();
    let mut items = Vec::new();
    let mut pruned = Instant::now();
    loop {
        let resetting = feed.write_set().resetting();
        let wait = if resetting {
            SETTLE_PAUSE
        } else {
            SILENCE_LIMIT
        };
        let settled = match tokio::time::timeout(wait, response.chunk()).await {
            Err(_) if resetting => feed.write_set().settle(),
            Err(_) => return End::Failed("the feed fell silent".into()),
            Ok(Err(e)) => return End::Failed(format!("the feed's connection failed: {e}")),
            Ok(Ok(None)) => return End::Failed("the feed's connection ended".into()),
            Ok(Ok(Some(bytes))) => {
                feed.heard_now();
                if parser.feed(&bytes, &mut items).is_err() {
                    return End::Failed("the feed sent an endless line".into());
                }
                // Every item is applied: no short-circuit.
                let mut settled = false;
                for item in items.drain(..) {
                    settled |= feed.apply(item);
                }
                settled
            }
        };
        if settled {
            if let Some(ready) = ready.take() {
                let _ = ready.send(Ok(()));
            }
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            feed.prune(config.horizon);
            pruned = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocations::tests_support::claims_of;

    fn feed_with(stream: &str) -> Feed {
        let feed = Feed::new();
        let mut parser = Parser::default();
        let mut items = Vec::new();
        parser.feed(stream.as_bytes(), &mut items).unwrap();
        for item in items {
            feed.apply(item);
        }
        feed
    }

    #[test]
    fn events_build_the_set_and_move_the_cursor() {
        let sid = uuid::Uuid::new_v4();
        let feed = feed_with(&format!(
            "event: reset\ndata:\n\n\
             event: revoked\nid: c1\ndata: {{\"sid\":\"{sid}\",\"at\":1,\"reason\":\"logout\"}}\n\n\
             event: revoked\nid: c2\ndata: not json\n\n\
             : heartbeat\n\n"
        ));
        let status = feed.status();
        assert_eq!(status.cursor.as_deref(), Some("c2"));
        assert_eq!(status.resets, 1);
        assert_eq!(status.entries, 1);
        assert_eq!(feed.revokes(&claims_of(sid, 0), "k"), Some(Reason::Logout));
        assert!(
            !feed.write_set().resetting(),
            "the heartbeat settled the reset"
        );
    }

    #[test]
    fn an_empty_sets_reset_carries_the_cursor_resumed_from() {
        let feed = feed_with("event: reset\nid: c0\ndata:\n\n: heartbeat\n\n");
        let status = feed.status();
        assert_eq!(status.cursor.as_deref(), Some("c0"));
        assert_eq!((status.resets, status.entries), (1, 0));
    }
}
