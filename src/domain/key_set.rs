//! The keys tokens are signed and verified with: each pinned to its
//! algorithm, chosen for signing by when it starts to sign, and retired
//! once every token it signed has expired; and their public halves as JWKs.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

/// One key: the signing half (absent for keys that only verify) and the
/// verifying half.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    /// The only algorithm this key signs and verifies with: a token naming
    /// the key under another algorithm is refused (no HS256 with an Ed25519
    /// key's public half).
    pub(crate) algorithm: Algorithm,
    /// From when (Unix seconds) the key signs: a key published ahead of its
    /// use verifies but does not sign before then.
    pub(crate) signs_from: i64,
    pub(crate) encoding: Option<EncodingKey>,
    pub(crate) decoding: DecodingKey,
    /// A retired key verifies until this time (Unix seconds), when every
    /// token it signed has expired; `None` while it signs.
    pub(crate) verify_until: Option<i64>,
    /// The public half as a JWK, for keys other services may verify with
    /// (never for an HMAC secret).
    pub(crate) public_jwk: Option<PublicJwk>,
}

impl Key {
    pub(crate) fn verifies_at(&self, now: i64) -> bool {
        self.verify_until.is_none_or(|until| now <= until)
    }
}

/// An Ed25519 public key as RFC 8037 writes it in a JWK Set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicJwk {
    pub(crate) kty: &'static str,
    pub(crate) crv: &'static str,
    /// The raw 32-byte public key, base64url without padding.
    pub(crate) x: String,
    pub(crate) kid: String,
    pub(crate) alg: &'static str,
    /// `use` in the JSON.
    pub(crate) use_: &'static str,
}

impl PublicJwk {
    pub(crate) fn ed25519(kid: &str, public_key: &[u8]) -> Self {
        use base64::Engine;
        Self {
            kty: "OKP",
            crv: "Ed25519",
            x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public_key),
            kid: kid.to_string(),
            alg: "EdDSA",
            use_: "sig",
        }
    }
}

/// The keys that verify (of any algorithm, each pinned to its own) and,
/// among those of the signing algorithm, the ones that sign in turn.
pub struct KeySet {
    algorithm: Algorithm,
    keys: Vec<Key>,
    by_kid: HashMap<String, usize>,
}

impl KeySet {
    /// `keys` in the order they sign (by `signs_from`); `algorithm` is the
    /// one new tokens are signed with. `None` if no key of it can sign.
    pub(crate) fn new(algorithm: Algorithm, keys: Vec<Key>) -> Option<Self> {
        keys.iter()
            .any(|k| k.algorithm == algorithm && k.encoding.is_some())
            .then_some(())?;
        let by_kid = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.kid.clone().map(|kid| (kid, i)))
            .collect();
        Some(Self {
            algorithm,
            keys,
            by_kid,
        })
    }

    /// The key that signs a token issued at `iat`: the last one of the
    /// signing algorithm whose `signs_from` has come (the earliest, should
    /// `iat` come before them all). Choosing by `iat` keeps signing
    /// deterministic: a refresh token signed again in the grace window gets
    /// the same key, hence the same string.
    pub(crate) fn signer_at(&self, iat: i64) -> Option<&Key> {
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| k.algorithm == self.algorithm && k.encoding.is_some());
        let first = candidates.clone().next();
        candidates.rfind(|k| k.signs_from <= iat).or(first)
    }

    /// The algorithm new tokens are signed with.
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether a key of this `kid` is in the set.
    pub(crate) fn knows(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// A single configured HS256 secret (no `kid`).
    pub(crate) fn from_secret(secret: &[u8]) -> Self {
        let key = Key {
            kid: None,
            algorithm: Algorithm::HS256,
            signs_from: i64::MIN,
            encoding: Some(EncodingKey::from_secret(secret)),
            decoding: DecodingKey::from_secret(secret),
            verify_until: None,
            public_jwk: None,
        };
        Self {
            algorithm: Algorithm::HS256,
            keys: vec![key],
            by_kid: HashMap::new(),
        }
    }

    /// The key a token names. A `kid` is only looked up among our own keys;
    /// a token without one is only accepted by a key without one. A retired
    /// key stops verifying once every token it signed has expired.
    pub(crate) fn verifier(&self, kid: Option<&str>, now: i64) -> Option<&Key> {
        let key = match kid {
            Some(kid) => self.by_kid.get(kid).map(|&i| &self.keys[i]),
            None => self.keys.iter().find(|k| k.kid.is_none()),
        }?;
        key.verifies_at(now).then_some(key)
    }

    /// The public keys of every key that still verifies at `now`.
    pub(crate) fn public_jwks(&self, now: i64) -> Vec<PublicJwk> {
        self.keys
            .iter()
            .filter(|k| k.verifies_at(now))
            .filter_map(|k| k.public_jwk.clone())
            .collect()
    }

    /// How many keys still verify at `now`.
    pub(crate) fn verifying(&self, now: i64) -> usize {
        self.keys.iter().filter(|k| k.verifies_at(now)).count()
    }
}
