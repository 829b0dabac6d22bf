//! Signing keys: the configured secret, or keys keyward generates and keeps
//! in the database so that every instance signs and verifies alike.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey};
use uuid::Uuid;

use crate::config::{Algorithm, Settings};
use crate::db::keys::{self, KeyRow};
use crate::domain::tokens::{Key, KeySet};

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

fn key_from_row(row: &KeyRow) -> Result<Key, KeyError> {
    let (encoding, decoding) = match row.algorithm.as_str() {
        "HS256" => (
            EncodingKey::from_secret(&row.private_key),
            DecodingKey::from_secret(&row.private_key),
        ),
        "EdDSA" => {
            let public = row
                .public_key
                .as_deref()
                .ok_or_else(|| KeyError::Invalid(format!("key {} has no public half", row.kid)))?;
            (
                EncodingKey::from_ed_der(&row.private_key),
                DecodingKey::from_ed_der(public),
            )
        }
        other => return Err(KeyError::Invalid(format!("unknown algorithm {other}"))),
    };
    Ok(Key {
        kid: Some(row.kid.clone()),
        encoding: Some(encoding),
        decoding,
    })
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
    // A retired key verifies until every token it signed has expired.
    let oldest_valid = now
        - TimeDelta::seconds(
            settings
                .auth
                .refresh_ttl_seconds
                .max(settings.auth.access_ttl_seconds)
                + settings.auth.leeway_seconds,
        );
    let keys = rows
        .iter()
        .filter(|row| row.retired_at.is_none_or(|at| at > oldest_valid))
        .map(key_from_row)
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
    let key = generate(settings.auth.algorithm, now)?;
    keys::insert_and_retire_others(conn, &key)?;
    Ok(key.kid)
}
