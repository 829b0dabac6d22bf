//! `GET /revocations` (long-poll) and `GET /revocations/stream` (server-sent
//! events): the revocation feed of API.md section 7, served from this
//! instance's memory (`Feed`); no request reads the database.
//!
//! The stream is pulled, not pushed: each subscriber holds only its cursor,
//! and the next events are made from the shared feed when actix asks for
//! more body, which it does only while the connection takes what was
//! written. A consumer that stops reading therefore costs no more memory
//! however much is revoked meanwhile; once entries it had not received pass
//! the horizon, its next events start with `event: reset` and the set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::future::Either;
use serde::Deserialize;
use tokio::sync::watch;

use crate::domain::feed_cursor::Cursor;
use crate::domain::revocation_feed::{Feed, Page};
use crate::error::ApiError;
use crate::http::doc::ErrorBody;
use crate::http::extract::ServiceClient;
use crate::http::AppState;

/// At most this many entries in one answer.
pub(crate) const PAGE_LIMIT: usize = 1000;
/// The longest `wait`, in seconds.
pub(crate) const MAX_WAIT_SECONDS: u64 = 30;
/// An open stream checks its service and writes a heartbeat on this tick.
const TICK: Duration = Duration::from_secs(1);
/// A `:` comment at least this often, so proxies keep the stream open.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Events written in one chunk of the stream.
const STREAM_BATCH: usize = 64;

/// The query of both feed routes.
#[derive(Debug, Deserialize)]
pub(crate) struct FeedQuery {
    pub after: Option<String>,
    pub wait: Option<String>,
}

/// `wait`: whole seconds, 0 to 30.
pub(crate) fn parse_wait(wait: Option<&str>) -> Result<Duration, ApiError> {
    let Some(wait) = wait else {
        return Ok(Duration::ZERO);
    };
    wait.trim()
        .parse::<u64>()
        .ok()
        .filter(|w| *w <= MAX_WAIT_SECONDS)
        .map(Duration::from_secs)
        .ok_or_else(|| ApiError::invalid_request("wait must be a whole number of seconds, 0 to 30"))
}

/// A cursor string, or none for a missing, empty or unknown one (which
/// the feed answers with a reset).
fn cursor_of(text: Option<&str>) -> Option<Cursor> {
    text.filter(|t| !t.is_empty()).and_then(Cursor::decode)
}

/// The long-poll answer: the page after `after`, held up to `wait` while it
/// would be empty (a reset is never held).
pub(crate) async fn long_poll(feed: &Feed, after: Option<&str>, wait: Duration) -> HttpResponse {
    let cursor = cursor_of(after);
    let deadline = tokio::time::Instant::now() + wait;
    let mut news = feed.subscribe();
    loop {
        news.borrow_and_update();
        let page = feed.page(cursor.as_ref(), PAGE_LIMIT);
        let held = page.entries.is_empty() && !page.reset;
        // Entries arrived (or may have): read again. The wait is over, or
        // the feed is gone (shutting down): answer what there is.
        let arrived = held
            && matches!(
                tokio::time::timeout_at(deadline, news.changed()).await,
                Ok(Ok(()))
            );
        if !arrived {
            return page_response(&page);
        }
    }
}

fn page_response(page: &Page) -> HttpResponse {
    let mut body = String::with_capacity(64 + page.entries.len() * 160);
    body.push_str("{\"revocations\":[");
    for (i, entry) in page.entries.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&entry.json);
    }
    // The cursor is hex digits and dots: nothing to escape.
    body.push_str(&format!(
        "],\"cursor\":\"{}\",\"reset\":{}}}",
        page.cursor.encode(),
        page.reset
    ));
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .content_type("application/json")
        .body(body)
}

/// Where a stream resumes: `?after=`, else `Last-Event-ID`.
pub(crate) fn resume_point<'a>(req: &'a HttpRequest, after: Option<&'a str>) -> Option<&'a str> {
    after.filter(|a| !a.is_empty()).or_else(|| {
        req.headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
    })
}

/// One subscriber's state.
struct Follower {
    feed: Arc<Feed>,
    cursor: Option<Cursor>,
    news: watch::Receiver<u64>,
    tick: tokio::time::Interval,
    last_write: Instant,
    allowed: Box<dyn Fn() -> bool>,
}

impl Follower {
    /// The next chunk of the stream, or `None` when it must end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            self.news.borrow_and_update();
            let chunk = self.events();
            if !chunk.is_empty() {
                self.last_write = Instant::now();
                return Some(Bytes::from(chunk));
            }
            let changed = self.news.changed();
            let tick = self.tick.tick();
            futures_util::pin_mut!(changed, tick);
            match futures_util::future::select(changed, tick).await {
                Either::Left((changed, _)) => changed.ok()?,
                Either::Right(_) => {
                    if !(self.allowed)() {
                        return None;
                    }
                    if self.last_write.elapsed() >= HEARTBEAT {
                        self.last_write = Instant::now();
                        return Some(Bytes::from_static(b": keep-alive\n\n"));
                    }
                }
            }
        }
    }

    /// Up to [`STREAM_BATCH`] events after the cursor, each with the cursor
    /// that follows it as its `id`; a reset first when the cursor is not
    /// (or no longer) current, with the cursor as its own `id` when the set
    /// is empty.
    fn events(&mut self) -> String {
        let mut out = String::new();
        for _ in 0..STREAM_BATCH {
            let page = self.feed.page(self.cursor.as_ref(), 1);
            let done = page.entries.is_empty();
            if page.reset && done {
                // An empty set: the reset itself carries the cursor, so that
                // a consumer reconnecting before the first entry resumes
                // instead of being reset again.
                out.push_str(&format!(
                    "event: reset\nid: {}\ndata:\n\n",
                    page.cursor.encode()
                ));
            } else if page.reset {
                // The entry that follows carries the cursor past it.
                out.push_str("event: reset\ndata:\n\n");
            }
            for entry in &page.entries {
                out.push_str(&format!(
                    "event: revoked\nid: {}\ndata: {}\n\n",
                    page.cursor.encode(),
                    entry.json
                ));
            }
            self.cursor = Some(page.cursor);
            if done {
                break;
            }
        }
        out
    }
}

/// The event stream after `after`, ended once `allowed` says no (checked
/// every second: a deleted service's streams end within one).
pub(crate) fn stream(
    feed: Arc<Feed>,
    after: Option<&str>,
    allowed: impl Fn() -> bool + 'static,
) -> HttpResponse {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let follower = Follower {
        news: feed.subscribe(),
        feed,
        cursor: cursor_of(after),
        tick,
        last_write: Instant::now(),
        allowed: Box::new(allowed),
    };
    let body = futures_util::stream::unfold(follower, |mut f| async move {
        let chunk = f.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), f))
    });
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        // Proxies such as nginx would otherwise hold events back.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// The revocation feed as JSON pages (API.md section 7).
#[utoipa::path(get, path = "/revocations", tag = "services",
    params(
        ("after" = Option<String>, Query, description = "A cursor the feed returned; none, or an unknown or outdated one, answers reset: true with the whole set"),
        ("wait" = Option<u64>, Query, description = "Seconds (0 to 30) to hold an answer that would be empty"),
    ),
    security(("service" = [])),
    responses(
        (status = 200, description = "{\"revocations\": [...], \"cursor\": \"<opaque>\", \"reset\": bool}, at most 1000 entries, oldest first"),
        (status = 400, body = ErrorBody, description = "invalid_request: wait is not 0 to 30"),
        (status = 401, body = ErrorBody, description = "invalid_client (WWW-Authenticate: Basic)"),
    ))]
pub(crate) async fn revocations(
    state: actix_web::web::Data<AppState>,
    _service: ServiceClient,
    query: actix_web::web::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let wait = parse_wait(query.wait.as_deref())?;
    Ok(long_poll(&state.feed, query.after.as_deref(), wait).await)
}

/// The revocation feed as server-sent events (API.md section 7).
#[utoipa::path(get, path = "/revocations/stream", tag = "services",
    params(
        ("after" = Option<String>, Query, description = "Resume after this cursor (else Last-Event-ID)"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received"),
    ),
    security(("service" = [])),
    responses(
        (status = 200, content_type = "text/event-stream", description = "event: reset (when the set must be replaced), event: revoked with the entry as data and the cursor as id, and a : comment at least every 15 s"),
        (status = 401, body = ErrorBody, description = "invalid_client (WWW-Authenticate: Basic)"),
    ))]
pub(crate) async fn revocations_stream(
    req: HttpRequest,
    state: actix_web::web::Data<AppState>,
    service: ServiceClient,
    query: actix_web::web::Query<FeedQuery>,
) -> HttpResponse {
    let registry = state.services.clone();
    let id = service.0.id;
    stream(
        state.feed.clone(),
        resume_point(&req, query.after.as_deref()),
        move || registry.is_active(id),
    )
}
