//! Signing keys: the configured secret, or keys keyward generates and keeps
//! in the database so that every instance signs and verifies alike.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey};
use uuid::Uuid;

use crate::config::{Algorithm, Settings};
use crate::db::keys::{self, KeyRow};
use crate::domain::tokens::{Key, KeySet, PublicJwk};

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
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::EdDSA => "EdDSA",
    }
}

fn jwt_algorithm(algorithm: Algorithm) -> JwtAlgorithm {
    match algorithm {
        Algorithm::HS256 => JwtAlgorithm::HS256,
        Algorithm::EdDSA => JwtAlgorithm::EdDSA,
    }
}

/// Generates a new key of `algorithm`.
pub fn generate(algorithm: Algorithm, now: DateTime<Utc>) -> Result<KeyRow, KeyError> {
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
    let (encoding, decoding, public_jwk) = match row.algorithm.as_str() {
        "HS256" => (
            EncodingKey::from_secret(&row.private_key),
            DecodingKey::from_secret(&row.private_key),
            None,
        ),
        "EdDSA" => {
            let public = ed25519_public(row)?;
            (
                EncodingKey::from_ed_der(&row.private_key),
                DecodingKey::from_ed_der(public),
                Some(PublicJwk::ed25519(&row.kid, public)),
            )
        }
        other => return Err(KeyError::Invalid(format!("unknown algorithm {other}"))),
    };
    Ok(Key {
        kid: Some(row.kid.clone()),
        encoding: Some(encoding),
        decoding,
        verify_until,
        public_jwk,
    })
}

/// How long after its retirement a key must keep verifying: the longest a
/// token it signed can live, plus the leeway, plus [`PROPAGATION_SLACK`].
fn retired_key_lifetime(settings: &Settings) -> TimeDelta {
    TimeDelta::seconds(
        settings
            .auth
            .refresh_ttl_seconds
            .max(settings.auth.access_ttl_seconds)
            + settings.auth.leeway_seconds,
    ) + PROPAGATION_SLACK
}

/// The key set this instance signs and verifies with. Without a configured
/// secret the keys come from the database; the first instance to find none
/// creates one (under an advisory lock, so two instances agree).
pub fn load(
    conn: &mut PgConnection,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<KeySet, KeyError> {
    if let Some(secret) = &settings.auth.jwt_secret {
        return Ok(KeySet::from_secret(secret.expose().as_bytes()));
    }
    let algorithm = settings.auth.algorithm;
    let name = algorithm_name(algorithm);
    let mut rows = keys::list(conn, name)?;
    if rows.is_empty() {
        rows = conn.transaction(|conn| {
            diesel::sql_query("SELECT pg_advisory_xact_lock(1802961154)").execute(conn)?;
            let rows = keys::list(conn, name)?;
            if !rows.is_empty() {
                return Ok::<_, KeyError>(rows);
            }
            let key = generate(algorithm, now)?;
            keys::insert_and_retire_others(conn, &key)?;
            Ok(vec![key])
        })?;
    }
    // A retired key verifies until every token it signed has expired; the
    // key set checks that time at each verification, so a key leaves (and
    // leaves the JWKS) on time without waiting for the next reload.
    let lifetime = retired_key_lifetime(settings);
    let keys = rows
        .iter()
        .filter_map(|row| {
            let until = row.retired_at.map(|at| (at + lifetime).timestamp());
            match until {
                Some(until) if until < now.timestamp() => None,
                _ => Some(key_from_row(row, until)),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    KeySet::new(jwt_algorithm(algorithm), keys)
        .ok_or_else(|| KeyError::Invalid("no key can sign".into()))
}

/// Adds a new signing key; the others keep verifying until their tokens have
/// expired. Instances learn of it through the keys channel.
pub fn rotate(
    conn: &mut PgConnection,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<String, KeyError> {
    // Retired rows are not pruned here: this runs in the command-line tool,
    // whose settings (token lifetimes) need not be the servers'.
    let key = generate(settings.auth.algorithm, now)?;
    keys::insert_and_retire_others(conn, &key)?;
    Ok(key.kid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tokens::tests::{access as claims, tokens_with as tokens};
    use crate::domain::tokens::TokenError;

    fn eddsa_row() -> KeyRow {
        generate(Algorithm::EdDSA, Utc::now()).unwrap()
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
        let (old, new) = (eddsa_row(), eddsa_row());
        let until = 2_000_000;
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
        assert_eq!(both.signing_kid(), Some(new.kid.clone()));
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
        let row = generate(Algorithm::HS256, Utc::now()).unwrap();
        let key = key_from_row(&row, None).unwrap();
        assert!(key.public_jwk.is_none());
        let t = tokens(KeySet::new(JwtAlgorithm::HS256, vec![key]).unwrap());
        assert!(t.public_jwks(0).is_empty());
    }
}
