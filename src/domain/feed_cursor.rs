//! The revocation feed's cursor: what a consumer has been sent, in a form
//! that holds on every instance and across restarts, although sequence
//! values commit out of order.
//!
//! Entries are ordered by `(tx, id)`: `tx` is the writing transaction's id,
//! `id` the row's. A cursor says "every entry with `tx` below `tx` has been
//! sent, and those with `tx` equal to it and `id` up to `upto`, and the ones
//! listed in `ids`". An instance only moves a cursor's `tx` up to its
//! listener's watermark (the snapshot xmin of its last read: every entry
//! with a lower `tx` was visible to that read, so none can still appear),
//! never past an entry it has not sent. `ids` names the entries sent whose
//! `tx` is at or above that watermark (committed out of order while an older
//! transaction still ran), so they are not sent again; it is capped when the
//! cursor is written out, and an entry left out is merely sent twice.
//! Resuming anywhere re-sends at most those few: duplicates, never a skip.

use std::collections::BTreeSet;

/// At most this many ids are written into a cursor string.
const MAX_IDS: usize = 32;
/// Longer strings are not cursors of ours.
const MAX_LEN: usize = 1024;
const VERSION: &str = "1";

/// A position in the feed of one database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Cursor {
    /// Names the database (its oid): another database's cursor is unknown.
    pub(crate) tag: i64,
    pub(crate) tx: i64,
    /// Entries with this `tx` and an `id` up to this one were sent.
    pub(crate) upto: i64,
    /// Entries sent beyond `(tx, upto)`.
    pub(crate) ids: BTreeSet<i64>,
}

impl Cursor {
    /// The start of the feed: nothing sent.
    pub(crate) fn start(tag: i64) -> Self {
        Self {
            tag,
            ..Self::default()
        }
    }

    /// Whether the entry at `(tx, id)` has been sent.
    pub(crate) fn has_sent(&self, tx: i64, id: i64) -> bool {
        (tx, id) <= (self.tx, self.upto) || self.ids.contains(&id)
    }

    /// Whether `(tx, upto)` is before `other`'s.
    pub(crate) fn is_before(&self, tx: i64, upto: i64) -> bool {
        (self.tx, self.upto) < (tx, upto)
    }

    /// The opaque string a consumer hands back (`1.<tag>.<tx>.<upto>[.<id>…]`
    /// in hex). Ids beyond the cap are left out: those entries will be sent
    /// again.
    pub(crate) fn encode(&self) -> String {
        let mut out = format!("{VERSION}.{:x}.{:x}.{:x}", self.tag, self.tx, self.upto);
        for id in self.ids.iter().take(MAX_IDS) {
            out.push_str(&format!(".{id:x}"));
        }
        out
    }

    /// A cursor written by [`encode`](Self::encode); `None` for anything
    /// else.
    pub(crate) fn decode(text: &str) -> Option<Self> {
        if text.len() > MAX_LEN || !text.is_ascii() {
            return None;
        }
        let mut parts = text.split('.');
        if parts.next()? != VERSION {
            return None;
        }
        let mut number = || -> Option<i64> {
            let part = parts.next()?;
            if part.is_empty() || part.len() > 16 {
                return None;
            }
            i64::from_str_radix(part, 16).ok().filter(|n| *n >= 0)
        };
        let tag = number()?;
        let tx = number()?;
        let upto = number()?;
        let mut ids = BTreeSet::new();
        for part in parts {
            if part.is_empty() || part.len() > 16 || ids.len() >= MAX_IDS {
                return None;
            }
            ids.insert(i64::from_str_radix(part, 16).ok().filter(|n| *n >= 0)?);
        }
        Some(Self { tag, tx, upto, ids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_string() {
        let c = Cursor {
            tag: 16_384,
            tx: 1_234_567,
            upto: 9,
            ids: [12, 40].into_iter().collect(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let start = Cursor::start(7);
        assert_eq!(Cursor::decode(&start.encode()), Some(start));
    }

    #[test]
    fn anything_else_is_no_cursor() {
        for text in [
            "",
            "garbage-cursor-1",
            "2.1.2.3",
            "1.1.2",
            "1.1.2.x",
            "1.-1.2.3",
            "1.1.2.3.",
            "1.11111111111111111.2.3",
        ] {
            assert_eq!(Cursor::decode(text), None, "{text}");
        }
        assert_eq!(Cursor::decode(&"1.".repeat(600)), None);
    }

    #[test]
    fn sent_means_below_the_position_or_listed() {
        let c = Cursor {
            tag: 1,
            tx: 100,
            upto: 5,
            ids: [77].into_iter().collect(),
        };
        assert!(c.has_sent(99, 1_000));
        assert!(c.has_sent(100, 5));
        assert!(!c.has_sent(100, 6));
        assert!(!c.has_sent(101, 1));
        assert!(c.has_sent(150, 77));
    }

    #[test]
    fn ids_beyond_the_cap_are_left_out_of_the_string() {
        let c = Cursor {
            tag: 1,
            tx: 10,
            upto: 0,
            ids: (1..=100).collect(),
        };
        let back = Cursor::decode(&c.encode()).unwrap();
        assert_eq!(back.ids.len(), MAX_IDS);
        assert!(back.ids.iter().all(|id| c.ids.contains(id)));
    }
}
