//! The revocation feed as each instance serves it (API.md section 7): the
//! entries of the `revocations` log within the horizon, in `(tx, id)` order,
//! held in memory and fed by the listener; consumers page through it with a
//! [`Cursor`] and wait for news on a watch channel. No request reads the
//! database.
//!
//! Entries older than the horizon are dropped (their tokens have expired);
//! the feed remembers the last ones dropped (and below those, the largest
//! `tx` dropped), so that a cursor that may not have seen a dropped entry
//! gets a reset instead of a silent gap, and one that did see it does not. An entry is only
//! dropped once its `tx` is below the watermark, so that the cursor a reset
//! answers with (at the watermark) is never itself outdated.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;

use super::feed_cursor::Cursor;

/// What an entry revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    Session { sid: Uuid, sub: Option<Uuid> },
    AuthBefore(DateTime<Utc>),
    Kid(String),
}

/// One entry, with its JSON written once for every consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeedEntry {
    pub(crate) id: i64,
    pub(crate) tx: i64,
    pub(crate) at: DateTime<Utc>,
    pub(crate) json: Arc<str>,
}

#[derive(Serialize)]
struct SessionJson<'a> {
    sid: Uuid,
    sub: Option<Uuid>,
    at: DateTime<Utc>,
    reason: &'a str,
}

#[derive(Serialize)]
struct AuthBeforeJson<'a> {
    auth_before: DateTime<Utc>,
    at: DateTime<Utc>,
    reason: &'a str,
}

#[derive(Serialize)]
struct KidJson<'a> {
    kid: &'a str,
    at: DateTime<Utc>,
    reason: &'a str,
}

impl FeedEntry {
    pub(crate) fn new(
        id: i64,
        tx: i64,
        at: DateTime<Utc>,
        reason: &str,
        subject: &Subject,
    ) -> Self {
        let json = match subject {
            Subject::Session { sid, sub } => serde_json::to_string(&SessionJson {
                sid: *sid,
                sub: *sub,
                at,
                reason,
            }),
            Subject::AuthBefore(auth_before) => serde_json::to_string(&AuthBeforeJson {
                auth_before: *auth_before,
                at,
                reason,
            }),
            Subject::Kid(kid) => serde_json::to_string(&KidJson { kid, at, reason }),
        };
        // Serialising these plain structs cannot fail.
        let json = json.unwrap_or_else(|_| String::from("{}"));
        Self {
            id,
            tx,
            at,
            json: json.into(),
        }
    }
}

/// One answer: the entries after a cursor, and the cursor after them.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) entries: Vec<Arc<FeedEntry>>,
    pub(crate) cursor: Cursor,
    /// The cursor was unknown or too old: `entries` start the whole set.
    pub(crate) reset: bool,
}

#[derive(Debug, Default)]
struct Buffer {
    tag: i64,
    entries: BTreeMap<(i64, i64), Arc<FeedEntry>>,
    /// id -> tx of every entry held.
    by_id: HashMap<i64, i64>,
    /// Every entry with a lower `tx` is held (or was dropped).
    watermark: i64,
    /// Every entry dropped or never held has a `tx` at or below this (-1
    /// for none), or is in `dropped`.
    dropped_tx: i64,
    /// The last entries dropped, as `(tx, id)`.
    dropped: BTreeSet<(i64, i64)>,
}

/// How many dropped entries are remembered one by one.
const DROPPED_KEPT: usize = 1024;

impl Buffer {
    fn drop_entry(&mut self, tx: i64, id: i64) {
        self.dropped.insert((tx, id));
        while self.dropped.len() > DROPPED_KEPT {
            if let Some((tx, _)) = self.dropped.pop_first() {
                self.dropped_tx = self.dropped_tx.max(tx);
            }
        }
    }

    /// Whether `cursor` is of this feed and has been sent every entry
    /// dropped after it.
    fn is_current(&self, cursor: &Cursor) -> bool {
        cursor.tag == self.tag
            && self.dropped_tx < cursor.tx
            && self
                .dropped
                .range((cursor.tx, i64::MIN)..)
                .all(|&(tx, id)| cursor.has_sent(tx, id))
    }
}

/// The feed of one instance.
#[derive(Debug)]
pub struct Feed {
    buffer: RwLock<Buffer>,
    changed: watch::Sender<u64>,
    /// Seconds an entry is kept after its `at`: the revocation horizon.
    keep_seconds: i64,
}

impl Feed {
    pub(crate) fn new(keep_seconds: i64) -> Self {
        Self {
            buffer: RwLock::new(Buffer {
                dropped_tx: -1,
                ..Buffer::default()
            }),
            changed: watch::channel(0).0,
            keep_seconds,
        }
    }

    /// Names the database and what a start-up read could not hold (the
    /// largest `tx` of the rows past the horizon).
    pub(crate) fn begin(&self, tag: i64, dropped_tx: i64) {
        let mut b = self.buffer.write().unwrap_or_else(|e| e.into_inner());
        b.tag = tag;
        b.dropped_tx = b.dropped_tx.max(dropped_tx);
    }

    /// Wakes when entries arrive.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Adds what one read of the log found (entries already held are
    /// ignored), and that read's watermark.
    pub(crate) fn extend(&self, entries: Vec<FeedEntry>, watermark: i64, now: DateTime<Utc>) {
        let cutoff = now.timestamp() - self.keep_seconds;
        let mut added = false;
        {
            let mut b = self.buffer.write().unwrap_or_else(|e| e.into_inner());
            b.watermark = b.watermark.max(watermark);
            for entry in entries {
                if entry.at.timestamp() < cutoff && entry.tx < b.watermark {
                    b.drop_entry(entry.tx, entry.id);
                } else if b.by_id.insert(entry.id, entry.tx).is_none() {
                    b.entries.insert((entry.tx, entry.id), Arc::new(entry));
                    added = true;
                }
            }
        }
        if added {
            self.changed.send_modify(|v| *v += 1);
        }
    }

    /// Drops the entries past the horizon at `now`; returns how many.
    pub(crate) fn prune(&self, now: DateTime<Utc>) -> usize {
        let cutoff = now.timestamp() - self.keep_seconds;
        let mut b = self.buffer.write().unwrap_or_else(|e| e.into_inner());
        let watermark = b.watermark;
        let old: Vec<(i64, i64)> = b
            .entries
            .iter()
            .filter(|(_, e)| e.at.timestamp() < cutoff && e.tx < watermark)
            .map(|(k, _)| *k)
            .collect();
        for key in &old {
            b.entries.remove(key);
            b.by_id.remove(&key.1);
            b.drop_entry(key.0, key.1);
        }
        old.len()
    }

    /// How many entries are held.
    pub(crate) fn len(&self) -> usize {
        self.buffer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// At most `limit` entries not yet sent to the holder of `from`, oldest
    /// first; a missing, foreign or outdated cursor starts over with
    /// `reset`.
    pub(crate) fn page(&self, from: Option<&Cursor>, limit: usize) -> Page {
        let b = self.buffer.read().unwrap_or_else(|e| e.into_inner());
        let (start, reset) = match from {
            Some(c) if b.is_current(c) => (c.clone(), false),
            _ => (Cursor::start(b.tag), true),
        };
        let mut entries = Vec::new();
        let mut next = None;
        let after = (start.tx, start.upto.saturating_add(1));
        for (&(tx, id), entry) in b.entries.range(after..) {
            if start.ids.contains(&id) {
                continue;
            }
            if entries.len() == limit {
                next = Some((tx, id));
                break;
            }
            entries.push(entry.clone());
        }
        // Up to the watermark, or to the first entry left for the next
        // page, whichever comes first; never back.
        let (tx, upto) = match next {
            Some((tx, id)) if tx < b.watermark => (tx, id - 1),
            _ => (b.watermark, 0),
        };
        let mut cursor = start;
        if cursor.is_before(tx, upto) {
            cursor.tx = tx;
            cursor.upto = upto;
        }
        cursor.ids.extend(entries.iter().map(|e| e.id));
        let (ctx, cupto) = (cursor.tx, cursor.upto);
        cursor.ids.retain(|id| {
            b.by_id
                .get(id)
                .is_some_and(|&etx| (etx, *id) > (ctx, cupto))
        });
        Page {
            entries,
            cursor,
            reset,
        }
    }
}

#[cfg(test)]
#[path = "revocation_feed_tests.rs"]
mod tests;
