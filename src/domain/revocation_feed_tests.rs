//! Tests of the revocation feed: pages, cursors, resets and pruning.

use super::*;

const TAG: i64 = 42;

/// Whether `cursor` is one of `feed`'s that has missed nothing dropped since.
fn is_current(feed: &Feed, cursor: &Cursor) -> bool {
    feed.buffer.read().unwrap().is_current(cursor)
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn entry(id: i64, tx: i64, secs: i64) -> FeedEntry {
    FeedEntry::new(
        id,
        tx,
        at(secs),
        "logout",
        &Subject::Session {
            sid: Uuid::new_v4(),
            sub: None,
        },
    )
}

fn feed() -> Feed {
    let f = Feed::new(100);
    f.begin(TAG, -1);
    f
}

fn ids(page: &Page) -> Vec<i64> {
    page.entries.iter().map(|e| e.id).collect()
}

#[test]
fn no_cursor_is_a_reset_with_everything_and_then_nothing() {
    let f = feed();
    f.extend(vec![entry(1, 10, 1000), entry(2, 11, 1000)], 12, at(1000));
    let first = f.page(None, 1000);
    assert!(first.reset);
    assert_eq!(ids(&first), vec![1, 2]);
    let again = f.page(Some(&first.cursor), 1000);
    assert!(!again.reset);
    assert!(again.entries.is_empty());
}

#[test]
fn an_entry_committed_late_with_a_lower_id_is_not_skipped() {
    // Transaction 20 took id 5 but committed after transaction 21 (id 6):
    // the first read sees only id 6 and a watermark of 20 (20 still runs).
    let f = feed();
    f.extend(vec![entry(6, 21, 1000)], 20, at(1000));
    let first = f.page(None, 1000);
    assert_eq!(ids(&first), vec![6]);
    assert_eq!(first.cursor.tx, 20);
    f.extend(vec![entry(5, 20, 1000), entry(6, 21, 1000)], 22, at(1000));
    let second = f.page(Some(&first.cursor), 1000);
    assert_eq!(ids(&second), vec![5], "id 6 was sent already: {second:?}");
    // The same cursor on another instance that has not read id 6 yet gets
    // what it has, and keeps the position.
    let other = feed();
    other.extend(vec![entry(5, 20, 1000)], 20, at(1000));
    let there = other.page(Some(&first.cursor), 1000);
    assert_eq!(ids(&there), vec![5]);
    assert!(there.cursor.tx <= 21);
}

#[test]
fn pages_cut_inside_one_transaction_resume_after_the_last_entry_sent() {
    let f = feed();
    let many: Vec<_> = (1..=25).map(|id| entry(id, 30, 1000)).collect();
    f.extend(many, 31, at(1000));
    let mut cursor = None;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let page = f.page(cursor.as_ref(), 10);
        seen.extend(ids(&page));
        cursor = Some(page.cursor);
        if page.entries.is_empty() {
            break;
        }
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
}

#[test]
fn a_cursor_older_than_a_dropped_entry_is_reset() {
    let f = feed();
    f.extend(vec![entry(1, 10, 1000)], 11, at(1000));
    let early = f.page(None, 1000).cursor;
    f.extend(vec![entry(2, 12, 1050)], 13, at(1050));
    let late = f.page(Some(&early), 1000).cursor;
    assert_eq!(f.prune(at(1120)), 1);
    // Both had seen entry 1, the one dropped.
    assert!(!f.page(Some(&late), 1000).reset);
    assert!(is_current(&f, &early));
    // Entry 2 came after `early`: once it is dropped, `early` may have
    // missed it.
    assert_eq!(f.prune(at(1160)), 1);
    let p = f.page(Some(&early), 1000);
    assert!(p.reset && p.entries.is_empty());
    assert!(is_current(&f, &late));
}

#[test]
fn a_cursor_of_another_database_is_unknown() {
    let f = feed();
    f.extend(vec![entry(1, 10, 1000)], 11, at(1000));
    let mut c = f.page(None, 1000).cursor;
    c.tag = TAG + 1;
    let p = f.page(Some(&c), 1000);
    assert!(p.reset);
    assert_eq!(ids(&p), vec![1]);
}

#[test]
fn entries_read_twice_are_held_once_and_news_wakes_subscribers() {
    let f = feed();
    let mut rx = f.subscribe();
    rx.borrow_and_update();
    f.extend(vec![entry(1, 10, 1000)], 11, at(1000));
    assert!(rx.has_changed().unwrap());
    rx.borrow_and_update();
    f.extend(vec![entry(1, 10, 1000)], 12, at(1000));
    assert!(!rx.has_changed().unwrap(), "nothing new arrived");
    assert_eq!(f.len(), 1);
}

#[test]
fn an_old_entry_above_the_watermark_is_kept_until_the_watermark_passes_it() {
    let f = feed();
    f.extend(vec![entry(1, 50, 1000)], 40, at(1000));
    assert_eq!(
        f.prune(at(2000)),
        0,
        "transactions before 50 may still commit"
    );
    let reset = f.page(None, 1000);
    assert!(is_current(&f, &reset.cursor));
    f.extend(Vec::new(), 51, at(2000));
    assert_eq!(f.prune(at(2000)), 1);
    assert!(is_current(&f, &f.page(None, 1000).cursor));
    // The reset's cursor had been sent entry 1 (listed by id): still current.
    assert!(is_current(&f, &reset.cursor));
    assert!(!is_current(&f, &Cursor::start(TAG)));
}

#[test]
fn an_empty_feed_answers_a_cursor_that_misses_nothing_committed_later() {
    // Nothing revoked yet; the read saw a snapshot xmin of 20, so
    // transactions 20 and up may still commit entries.
    let f = feed();
    f.extend(Vec::new(), 20, at(1000));
    let empty = f.page(None, 1000);
    assert!(empty.reset && empty.entries.is_empty());
    assert_eq!((empty.cursor.tx, empty.cursor.upto), (20, 0));
    let resumed = f.page(Some(&empty.cursor), 1000);
    assert!(!resumed.reset, "an empty feed's cursor is current");
    // Transaction 20 (running at the read) and 25 commit afterwards, 25 read
    // first.
    f.extend(vec![entry(8, 25, 1000)], 20, at(1000));
    f.extend(vec![entry(7, 20, 1000), entry(8, 25, 1000)], 26, at(1000));
    let later = f.page(Some(&empty.cursor), 1000);
    assert!(!later.reset);
    assert_eq!(ids(&later), vec![7, 8]);
    // Still current once the horizon has passed over an empty stretch.
    let quiet = feed();
    quiet.extend(Vec::new(), 20, at(1000));
    let cursor = quiet.page(None, 1000).cursor;
    quiet.extend(Vec::new(), 500, at(5000));
    assert_eq!(quiet.prune(at(5000)), 0);
    assert!(!quiet.page(Some(&cursor), 1000).reset);
}
