//! Signing keys: the configured secret, or keys keyward generates and keeps
//! in the database so that every instance signs and verifies alike.
//!
//! A key's life: `keys rotate` adds it, published at once and signing only
//! from `signs_from` (`auth.key_publish_seconds` later, unless `--now`); the
//! key it takes over from retires then and verifies until every token it
//! signed has expired, after which the cleanup deletes it. `keys revoke`
//! ends a key at once. "The database's algorithm" is that of its newest key
//! not revoked: `keys rotate` keeps to it, and an instance whose
//! `auth.algorithm` differs adds a key of its own at start (see `prepare`).

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey};
use uuid::Uuid;

use crate::config::{Algorithm, Settings};
use crate::db::keys::{self, KeyRow};
use crate::db::DbPool;
use crate::domain::tokens::{Key, KeySet, PublicJwk, Tokens};

/// How long an instance may keep signing with a key after another instance
/// retired it: the time the news takes to arrive (normally well under a
/// second, longer while a listener reconnects; such an instance also
/// answers `/ready` with `503`). Tokens signed in that window must verify
/// to their end too.
const PROPAGATION_SLACK: TimeDelta = TimeDelta::seconds(60);

/// The PKCS#8 v1 prefix of an Ed25519 private key; the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing keys: {0}")]
    Store(#[from] diesel::result::Error),
    #[error("signing keys: no randomness: {0}")]
    Random(String),
    #[error("signing keys: {0}")]
    Invalid(String),
    #[error(
        "the database's signing keys are {database} but auth.algorithm is {configured}: \
         run the command with the servers' settings (KEYWARD__AUTH__ALGORITHM={database})"
    )]
    AlgorithmMismatch {
        database: &'static str,
        configured: &'static str,
    },
    #[error(
        "key {0} is waiting to be published (it signs from {1}): \
         `keys rotate --now` makes it sign at once"
    )]
    Waiting(String, DateTime<Utc>),
    #[error("no signing key {0}")]
    NotFound(String),
}

pub(crate) fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::EdDSA => "EdDSA",
    }
}

pub(crate) fn parse_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "HS256" => Some(Algorithm::HS256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

fn jwt_algorithm(algorithm: Algorithm) -> JwtAlgorithm {
    match algorithm {
        Algorithm::HS256 => JwtAlgorithm::HS256,
        Algorithm::EdDSA => JwtAlgorithm::EdDSA,
    }
}

/// Generates a new key of `algorithm` that signs from `signs_from`.
pub fn generate(
    algorithm: Algorithm,
    now: DateTime<Utc>,
    signs_from: DateTime<Utc>,
) -> Result<KeyRow, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let (private_key, public_key) = match algorithm {
        Algorithm::HS256 => (seed.to_vec(), None),
        Algorithm::EdDSA => {
            let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
            let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
            pkcs8.extend_from_slice(&seed);
            (pkcs8, Some(signing.verifying_key().to_bytes().to_vec()))
        }
    };
    Ok(KeyRow {
        kid: Uuid::new_v4().simple().to_string(),
        algorithm: algorithm_name(algorithm).to_string(),
        private_key,
        public_key,
        created_at: now,
        retired_at: None,
        signs_from,
        revoked_at: None,
    })
}

/// The public half of a stored Ed25519 key, checked against its private
/// half: jsonwebtoken only parses keys when it first uses them (and slices a
/// public key shorter than 32 bytes with a panic), so a damaged row must be
/// refused here, at load.
fn ed25519_public(row: &KeyRow) -> Result<&[u8], KeyError> {
    let invalid = |what: &str| KeyError::Invalid(format!("key {}: {what}", row.kid));
    let public = row
        .public_key
        .as_deref()
        .ok_or_else(|| invalid("no public half"))?;
    let seed: [u8; 32] = row
        .private_key
        .strip_prefix(ED25519_PKCS8_PREFIX.as_slice())
        .and_then(|seed| seed.try_into().ok())
        .ok_or_else(|| invalid("the private half is not an Ed25519 PKCS#8 key"))?;
    let derived = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    if derived.as_bytes().as_slice() != public {
        return Err(invalid("the public half does not match the private half"));
    }
    Ok(public)
}

fn key_from_row(row: &KeyRow, verify_until: Option<i64>) -> Result<Key, KeyError> {
    let algorithm = parse_algorithm(&row.algorithm)
        .ok_or_else(|| KeyError::Invalid(format!("unknown algorithm {}", row.algorithm)))?;
    let (encoding, decoding, public_jwk) = match algorithm {
        Algorithm::HS256 => (
            EncodingKey::from_secret(&row.private_key),
            DecodingKey::from_secret(&row.private_key),
            None,
        ),
        Algorithm::EdDSA => {
            let public = ed25519_public(row)?;
            (
                EncodingKey::from_ed_der(&row.private_key),
                DecodingKey::from_ed_der(public),
                Some(PublicJwk::ed25519(&row.kid, public)),
            )
        }
    };
    Ok(Key {
        kid: Some(row.kid.clone()),
        algorithm: jwt_algorithm(algorithm),
        signs_from: row.signs_from.timestamp(),
        encoding: Some(encoding),
        decoding,
        verify_until,
        public_jwk,
    })
}

/// How long after its retirement a key must keep verifying: the longest a
/// token it signed can live, plus the leeway, plus `PROPAGATION_SLACK`.
pub fn retired_key_lifetime(settings: &Settings) -> TimeDelta {
    TimeDelta::seconds(
        settings
            .auth
            .refresh_ttl_seconds
            .max(settings.auth.access_ttl_seconds)
            + settings.auth.leeway_seconds,
    ) + PROPAGATION_SLACK
}

/// The algorithm of the database's newest key that is not revoked, if any.
pub(crate) fn database_algorithm(rows: &[KeyRow]) -> Option<Algorithm> {
    rows.iter()
        .rev()
        .find(|r| r.revoked_at.is_none())
        .and_then(|r| parse_algorithm(&r.algorithm))
}

/// At start-up, without a configured secret: makes sure a key of
/// `auth.algorithm` signs. On an empty database that is the first key; on a
/// database whose keys are of the other algorithm (one from before EdDSA was
/// the default, say), a new key signs at once and the old ones retire,
/// verifying until their tokens have expired, so nobody is signed out. Under
/// the keys' lock, so that instances starting together agree.
pub(crate) fn prepare(
    conn: &mut PgConnection,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<(), KeyError> {
    if settings.auth.jwt_secret.is_some() {
        return Ok(());
    }
    let algorithm = settings.auth.signing_algorithm();
    conn.transaction(|conn| {
        keys::lock(conn)?;
        let rows = keys::list(conn)?;
        let current = database_algorithm(&rows);
        if current == Some(algorithm) {
            return Ok(());
        }
        if let Some(previous) = current {
            log::warn!(
                "the database's signing keys are {}, auth.algorithm is {}: a new {} key signs from now on; the {} keys verify until their tokens expire",
                algorithm_name(previous),
                algorithm_name(algorithm),
                algorithm_name(algorithm),
                algorithm_name(previous),
            );
        }
        let key = generate(algorithm, now, now)?;
        keys::insert_and_retire_others(conn, &key)?;
        Ok(())
    })
}

/// The key set this instance signs and verifies with: the configured secret,
/// or every key of the database that still verifies at `now` (whatever its
/// algorithm; each key verifies only tokens of its own), signing with those
/// of `auth.algorithm`. Never writes: [`prepare`] does at start.
pub(crate) fn load(
    conn: &mut PgConnection,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<KeySet, KeyError> {
    if let Some(secret) = &settings.auth.jwt_secret {
        return Ok(KeySet::from_secret(secret.expose().as_bytes()));
    }
    let rows = keys::list(conn)?;
    // A retired key verifies until every token it signed has expired; the
    // key set checks that time at each verification, so a key leaves (and
    // leaves the JWKS) on time without waiting for the next reload.
    let lifetime = retired_key_lifetime(settings);
    let keys = rows
        .iter()
        .filter(|row| row.revoked_at.is_none())
        .filter_map(|row| {
            let until = row
                .retired_at
                .map(|at| at.checked_add_signed(lifetime).unwrap_or(at).timestamp());
            match until {
                Some(until) if until < now.timestamp() => None,
                _ => Some(key_from_row(row, until)),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let algorithm = settings.auth.signing_algorithm();
    KeySet::new(jwt_algorithm(algorithm), keys).ok_or_else(|| {
        KeyError::Invalid(format!(
            "no {} key can sign (start an instance to create one)",
            algorithm_name(algorithm)
        ))
    })
}

/// Re-reads the keys for a token that names `kid`, unknown to this instance
/// (rate-limited by [`Tokens::reload_for_kid`]); whether `kid` is known now.
pub(crate) fn reload_for_unknown_kid(
    pool: &DbPool,
    settings: &Settings,
    tokens: &Tokens,
    kid: &str,
    now: DateTime<Utc>,
) -> bool {
    if settings.auth.jwt_secret.is_some() {
        return false;
    }
    tokens.reload_for_kid(kid, || {
        let mut conn = pool
            .get()
            .map_err(|e| log::warn!("cannot re-read the signing keys: {e}"))
            .ok()?;
        load(&mut conn, settings, now)
            .map_err(|e| log::warn!("cannot re-read the signing keys: {e}"))
            .ok()
    })
}

/// Deletes the keys retired (or revoked) long enough ago that nothing they
/// signed can still be valid; run by the cleanup job with the servers'
/// settings.
pub fn delete_expired(
    conn: &mut PgConnection,
    settings: &Settings,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    match now.checked_sub_signed(retired_key_lifetime(settings)) {
        Some(cutoff) if settings.auth.jwt_secret.is_none() => {
            keys::delete_retired_before(conn, cutoff)
        }
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tokens::tests::{access as claims, tokens_with as tokens};
    use crate::domain::tokens::TokenError;

    fn eddsa_row() -> KeyRow {
        let epoch = DateTime::UNIX_EPOCH;
        generate(Algorithm::EdDSA, epoch, epoch).unwrap()
    }

    #[test]
    fn a_generated_ed25519_key_signs_and_verifies_and_publishes_its_public_half() {
        let row = eddsa_row();
        let key = key_from_row(&row, None).unwrap();
        let jwk = key.public_jwk.clone().unwrap();
        let t = tokens(KeySet::new(JwtAlgorithm::EdDSA, vec![key]).unwrap());
        let token = t.sign_access(&claims(1_000_000)).unwrap();
        assert!(t.verify_access(&token, 1_000_000).is_ok());
        assert_eq!(t.public_jwks(1_000_000), vec![jwk.clone()]);
        assert_eq!(jwk.kid, row.kid);
        assert_eq!(jwk.x.len(), 43, "32 bytes in base64url without padding");
    }

    #[test]
    fn a_retired_key_verifies_until_its_time_then_leaves_the_set() {
        let (old, mut new) = (eddsa_row(), eddsa_row());
        let until = 2_000_000;
        new.signs_from = DateTime::from_timestamp(until - 200, 0).unwrap();
        let old_only = tokens(
            KeySet::new(JwtAlgorithm::EdDSA, vec![key_from_row(&old, None).unwrap()]).unwrap(),
        );
        let token = old_only.sign_access(&claims(until - 100)).unwrap();
        let both = tokens(
            KeySet::new(
                JwtAlgorithm::EdDSA,
                vec![
                    key_from_row(&old, Some(until)).unwrap(),
                    key_from_row(&new, None).unwrap(),
                ],
            )
            .unwrap(),
        );
        assert_eq!(both.signing_kid(until - 100), Some(new.kid.clone()));
        assert_eq!(both.signing_kid(until - 201), Some(old.kid.clone()));
        assert!(both.verify_access(&token, until - 50).is_ok());
        assert_eq!(both.public_jwks(until).len(), 2);
        assert_eq!(both.public_jwks(until + 1).len(), 1);
        assert_eq!(both.public_jwks(until + 1)[0].kid, new.kid);
        let later = claims(until + 1);
        let forged_late = old_only.sign_access(&later).unwrap();
        assert_eq!(
            both.verify_access(&forged_late, until + 1),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn damaged_ed25519_rows_are_refused_at_load_not_at_first_use() {
        let good = eddsa_row();
        let mut short = good.clone();
        short.public_key = Some(vec![1, 2, 3]);
        let mut other = good.clone();
        other.public_key = eddsa_row().public_key;
        let mut missing = good.clone();
        missing.public_key = None;
        let mut private = good.clone();
        private.private_key.truncate(20);
        for row in [short, other, missing, private] {
            assert!(matches!(
                key_from_row(&row, None),
                Err(KeyError::Invalid(_))
            ));
        }
    }

    #[test]
    fn hmac_keys_are_never_published() {
        let row = generate(Algorithm::HS256, Utc::now(), Utc::now()).unwrap();
        let key = key_from_row(&row, None).unwrap();
        assert!(key.public_jwk.is_none());
        let t = tokens(KeySet::new(JwtAlgorithm::HS256, vec![key]).unwrap());
        assert!(t.public_jwks(0).is_empty());
    }
}
