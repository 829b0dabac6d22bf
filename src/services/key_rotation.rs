//! Operating on the database's signing keys (`keyward keys`): listing them
//! with their states, rotating in a new one, revoking one. Each change takes
//! the keys' lock, commits with its event and is announced on the keys
//! channel, so every instance reloads within moments.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::keys::{algorithm_name, database_algorithm, generate, parse_algorithm, KeyError};
use crate::config::Settings;
use crate::db::events::{self, EventKind, NewEvent};
use crate::db::keys::{self, KeyRow};

/// What `keys list` shows of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyState {
    /// Published, signing from `signs_from`.
    Next,
    Signing,
    /// Retired: verifies the tokens it signed until they expire.
    Verifying,
    Revoked,
}

/// One key as `keys list` shows it (never its private half).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KeyInfo {
    pub kid: String,
    pub algorithm: String,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    pub signs_from: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The states of `rows` (in signing order) at `now`: revoked ones, the
/// waiting ones, and of the others the last to start signing signs.
fn states(rows: &[KeyRow], now: DateTime<Utc>) -> Vec<KeyState> {
    let signer = rows
        .iter()
        .rposition(|r| r.revoked_at.is_none() && r.signs_from <= now);
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            if r.revoked_at.is_some() {
                KeyState::Revoked
            } else if r.signs_from > now {
                KeyState::Next
            } else if Some(i) == signer {
                KeyState::Signing
            } else {
                KeyState::Verifying
            }
        })
        .collect()
}

/// Every key in the database, in signing order, with its state at `now`.
pub(crate) fn list(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<KeyInfo>, KeyError> {
    let rows = keys::list(conn)?;
    let states = states(&rows, now);
    Ok(rows
        .into_iter()
        .zip(states)
        .map(|(r, state)| KeyInfo {
            kid: r.kid,
            algorithm: r.algorithm,
            state,
            created_at: r.created_at,
            signs_from: r.signs_from,
            retired_at: r.retired_at,
            revoked_at: r.revoked_at,
        })
        .collect())
}

/// What `keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub kid: String,
    pub signs_from: DateTime<Utc>,
    /// `--now` on a waiting key: that key signs now, no key was added.
    pub promoted: bool,
}

/// Adds a signing key of the database's algorithm (refusing another
/// `auth.algorithm`). It is published at once and signs after
/// `auth.key_publish_seconds`, or at once with `now_flag` (or when no key
/// signs yet). While a key waits, this refuses, naming it; with `now_flag`
/// the waiting key signs at once instead. Instances learn of it through the
/// keys channel.
pub fn rotate(
    conn: &mut PgConnection,
    settings: &Settings,
    now: DateTime<Utc>,
    now_flag: bool,
) -> Result<Rotated, KeyError> {
    // Retired rows are not pruned here: this runs in the command-line tool,
    // whose settings (token lifetimes) need not be the servers'.
    let configured = settings.auth.signing_algorithm();
    conn.transaction(|conn| {
        keys::lock(conn)?;
        let rows = keys::list(conn)?;
        if let Some(database) = database_algorithm(&rows) {
            if database != configured {
                return Err(KeyError::AlgorithmMismatch {
                    database: algorithm_name(database),
                    configured: algorithm_name(configured),
                });
            }
        }
        let states = states(&rows, now);
        if let Some(waiting) = rows
            .iter()
            .zip(&states)
            .find_map(|(r, s)| (*s == KeyState::Next).then_some(r))
        {
            if !now_flag {
                return Err(KeyError::Waiting(waiting.kid.clone(), waiting.signs_from));
            }
            keys::sign_from(conn, &waiting.kid, now)?;
            record(conn, EventKind::KeyRotated, &waiting.kid, now, Some(now))?;
            return Ok(Rotated {
                kid: waiting.kid.clone(),
                signs_from: now,
                promoted: true,
            });
        }
        let someone_signs = states.contains(&KeyState::Signing);
        let signs_from = if now_flag || !someone_signs {
            now
        } else {
            now.checked_add_signed(TimeDelta::seconds(settings.auth.key_publish_seconds))
                .ok_or_else(|| {
                    KeyError::Invalid("auth.key_publish_seconds is out of range".into())
                })?
        };
        let key = generate(configured, now, signs_from)?;
        keys::insert_and_retire_others(conn, &key)?;
        record(conn, EventKind::KeyRotated, &key.kid, now, Some(signs_from))?;
        Ok(Rotated {
            kid: key.kid,
            signs_from,
            promoted: false,
        })
    })
}

/// Revokes a key (`keys revoke`): it stops verifying on every instance at
/// once, and the revocation log carries it to other services. Revoking the
/// key that signs makes another sign at once: the waiting one, else a new
/// key of the same algorithm. Returns the key that signs from now on, if
/// this changed it.
pub fn revoke(
    conn: &mut PgConnection,
    kid: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, KeyError> {
    conn.transaction(|conn| {
        keys::lock(conn)?;
        let rows = keys::list(conn)?;
        let states = states(&rows, now);
        let (row, state) = rows
            .iter()
            .zip(&states)
            .find(|(r, _)| r.kid == kid)
            .ok_or_else(|| KeyError::NotFound(kid.to_string()))?;
        if !keys::revoke(conn, kid, now)? {
            return Ok(None);
        }
        record(conn, EventKind::KeyRevoked, kid, now, None)?;
        if *state == KeyState::Next {
            // The key that signs goes on signing: it must not retire when the
            // revoked one would have taken over.
            keys::cancel_retirement_at(conn, row.signs_from)?;
        }
        if *state != KeyState::Signing {
            return Ok(None);
        }
        let waiting = rows
            .iter()
            .zip(&states)
            .find_map(|(r, s)| (*s == KeyState::Next).then_some(r));
        let successor = match waiting {
            Some(next) => {
                keys::sign_from(conn, &next.kid, now)?;
                next.kid.clone()
            }
            None => {
                let algorithm = parse_algorithm(&row.algorithm).ok_or_else(|| {
                    KeyError::Invalid(format!("unknown algorithm {}", row.algorithm))
                })?;
                let key = generate(algorithm, now, now)?;
                keys::insert_and_retire_others(conn, &key)?;
                key.kid
            }
        };
        record(conn, EventKind::KeyRotated, &successor, now, Some(now))?;
        Ok(Some(successor))
    })
}

/// A `key_rotated` event (with when the key signs) or a `key_revoked` one.
fn record(
    conn: &mut PgConnection,
    kind: EventKind,
    kid: &str,
    now: DateTime<Utc>,
    signs_from: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    let detail = match signs_from {
        Some(at) => serde_json::json!({"kid": kid, "signs_from": at}),
        None => serde_json::json!({"kid": kid}),
    };
    events::record(conn, NewEvent::new(kind, now).detail(detail))
}

/// One line of `keys list`: kid, algorithm, state, when it was created, and
/// when it signs (a waiting key) or was revoked.
pub(crate) fn describe(key: &KeyInfo) -> String {
    let state = match key.state {
        KeyState::Next => "next",
        KeyState::Signing => "signing",
        KeyState::Verifying => "verifying",
        KeyState::Revoked => "revoked",
    };
    let mut line = format!(
        "{}  {:<5}  {:<9}  created {}",
        key.kid,
        key.algorithm,
        state,
        key.created_at.to_rfc3339()
    );
    if key.state == KeyState::Next {
        line.push_str(&format!("  signs from {}", key.signs_from.to_rfc3339()));
    }
    if let Some(at) = key.revoked_at {
        line.push_str(&format!("  revoked at {}", at.to_rfc3339()));
    }
    line
}
