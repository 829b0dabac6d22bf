//! Local verification of keyward access tokens, exactly as keyward checks
//! them itself (the checks of `keyward_claims`, which keyward makes too): the algorithm pinned to EdDSA,
//! `typ` = `at+jwt`, the key found by `kid` among keyward's published keys
//! only, `iss`, `aud`, `exp` with leeway and `nbf`, on a token of bounded
//! size. No network: [`Verifier`](crate::Verifier) adds the keys' refetch
//! and the revocation feed.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::claims::AccessClaims;
use crate::error::VerifyError;

pub use keyward_claims::ACCESS_TYP;
use keyward_claims::MAX_TOKEN_LEN;

/// What a token must say about where it comes from and when it is valid.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// The `iss` tokens must carry (the discovery document's `issuer`).
    pub issuer: String,
    /// The `aud` tokens must carry (keyward's `auth.audience`).
    pub audience: String,
    /// Seconds a token is still accepted past its `exp`, and before its
    /// `nbf` (keyward's `auth.leeway_seconds`).
    pub leeway_seconds: i64,
}

/// Why a token did not verify locally: [`VerifyError`] plus "this key is
/// not known (yet)", which the caller may answer by refetching the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Local {
    Refused(VerifyError),
    /// Signed by a key (this `kid`) the set does not hold.
    UnknownKid(String),
}

impl Local {
    /// The refusal a caller sees: a key still unknown once the keys were
    /// fetched again signed nothing of keyward's.
    pub(crate) fn into_error(self) -> VerifyError {
        match self {
            Self::Refused(e) => e,
            Self::UnknownKid(_) => VerifyError::Invalid,
        }
    }
}

/// keyward's public keys, by `kid`: only Ed25519 keys for EdDSA.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeySet {
    /// Reads a JWK Set (`/.well-known/jwks.json`). Keys of another type or
    /// algorithm, and keys without a `kid`, are skipped: tokens they would
    /// verify are refused.
    pub fn from_jwks(json: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = serde_json::from_slice(json)?;
        let keys = set
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let ed25519 = matches!(
                    &jwk.algorithm,
                    AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519
                );
                let alg_ok = matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::EdDSA));
                if !(ed25519 && alg_ok) {
                    return None;
                }
                Some((kid, DecodingKey::from_jwk(&jwk).ok()?))
            })
            .collect();
        Ok(Self { keys })
    }

    /// Whether a key with this `kid` is in the set.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Verifies a token against `keys` at `now` (Unix seconds): the claims and
/// the `kid` that signed it. Revocation is not checked here.
pub(crate) fn verify_local(
    token: &str,
    keys: &KeySet,
    expect: &Expectations,
    now: i64,
) -> Result<(AccessClaims, String), Local> {
    let invalid = Local::Refused(VerifyError::Invalid);
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(invalid);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid.clone())?;
    if header.typ.as_deref() != Some(ACCESS_TYP) || header.alg != Algorithm::EdDSA {
        return Err(invalid);
    }
    // keyward's keys always have a `kid`; a token without one is not theirs.
    let kid = header.kid.ok_or(invalid.clone())?;
    let Some(key) = keys.keys.get(&kid) else {
        return Err(Local::UnknownKid(kid));
    };
    let validation = keyward_claims::validation(Algorithm::EdDSA, &expect.issuer, &expect.audience);
    let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
        .map_err(|_| invalid.clone())?
        .claims;
    check_times(&claims, expect.leeway_seconds, now)?;
    Ok((claims, kid))
}

/// `nbf` and `exp` against `now` and the leeway, as keyward compares them.
pub(crate) fn check_times(claims: &AccessClaims, leeway: i64, now: i64) -> Result<(), Local> {
    keyward_claims::check_times(claims.exp, claims.nbf, now, leeway).map_err(|e| {
        Local::Refused(match e {
            keyward_claims::TimeError::NotYetValid => VerifyError::Invalid,
            keyward_claims::TimeError::Expired => VerifyError::Expired,
        })
    })
}

#[cfg(test)]
#[path = "../tests/support/keys.rs"]
mod test_keys;

#[cfg(test)]
mod tests {
    use super::test_keys::{jwks, sign, test_key};
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use uuid::Uuid;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "keyward".into(),
            aud: "keyward".into(),
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: now,
            exp: now + 900,
            nbf: None,
            auth_time: now,
            username: "jon".into(),
            name: Some("Jon".into()),
            admin: false,
        }
    }

    fn expectations() -> Expectations {
        Expectations {
            issuer: "keyward".into(),
            audience: "keyward".into(),
            leeway_seconds: 5,
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn verify(token: &str, keys: &KeySet, now: i64) -> Result<AccessClaims, Local> {
        verify_local(token, keys, &expectations(), now).map(|(c, _)| c)
    }

    #[test]
    fn a_token_signed_by_a_published_key_verifies_with_its_claims() {
        let key = test_key("k1", 1);
        let keys = KeySet::from_jwks(&jwks(&[&key])).unwrap();
        let claims = claims(NOW);
        let token = sign(&key, ACCESS_TYP, &claims);
        assert_eq!(
            verify_local(&token, &keys, &expectations(), NOW),
            Ok((claims, "k1".to_string()))
        );
    }

    #[test]
    fn expiry_and_nbf_honour_the_leeway() {
        let key = test_key("k1", 1);
        let keys = KeySet::from_jwks(&jwks(&[&key])).unwrap();
        let mut c = claims(NOW);
        let token = sign(&key, ACCESS_TYP, &c);
        assert!(verify(&token, &keys, c.exp + 5).is_ok());
        assert_eq!(
            verify(&token, &keys, c.exp + 6),
            Err(Local::Refused(VerifyError::Expired))
        );
        c.nbf = Some(NOW + 6);
        let token = sign(&key, ACCESS_TYP, &c);
        assert_eq!(
            verify(&token, &keys, NOW),
            Err(Local::Refused(VerifyError::Invalid))
        );
        assert!(verify(&token, &keys, NOW + 1).is_ok());
    }

    #[test]
    fn wrong_typ_issuer_audience_or_missing_claims_are_invalid() {
        let key = test_key("k1", 1);
        let keys = KeySet::from_jwks(&jwks(&[&key])).unwrap();
        let invalid = Err(Local::Refused(VerifyError::Invalid));
        let refresh_like = sign(&key, "refresh+jwt", &claims(NOW));
        assert_eq!(verify(&refresh_like, &keys, NOW), invalid);
        for mutate in [
            |c: &mut AccessClaims| c.iss = "else".into(),
            |c: &mut AccessClaims| c.aud = "else".into(),
        ] {
            let mut c = claims(NOW);
            mutate(&mut c);
            assert_eq!(verify(&sign(&key, ACCESS_TYP, &c), &keys, NOW), invalid);
        }
        // A refresh token's claims lack auth_time, username, name, admin.
        let mut c = serde_json::to_value(claims(NOW)).unwrap();
        c.as_object_mut().unwrap().remove("auth_time");
        assert_eq!(verify(&sign(&key, ACCESS_TYP, &c), &keys, NOW), invalid);
    }

    #[test]
    fn another_key_another_algorithm_or_no_kid_is_refused() {
        let (ours, theirs) = (test_key("k1", 1), test_key("k1", 2));
        let keys = KeySet::from_jwks(&jwks(&[&ours])).unwrap();
        let invalid = Err(Local::Refused(VerifyError::Invalid));
        // Same kid, other key: the signature fails.
        assert_eq!(
            verify(&sign(&theirs, ACCESS_TYP, &claims(NOW)), &keys, NOW),
            invalid
        );
        // An unknown kid is for the caller to refetch.
        let stranger = test_key("k9", 3);
        assert_eq!(
            verify(&sign(&stranger, ACCESS_TYP, &claims(NOW)), &keys, NOW),
            Err(Local::UnknownKid("k9".into()))
        );
        // HS256 with the public key's bytes as the secret: never.
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TYP.into());
        header.kid = Some("k1".into());
        let x = ours.jwk["x"].as_str().unwrap();
        let hs = jsonwebtoken::encode(
            &header,
            &claims(NOW),
            &EncodingKey::from_secret(x.as_bytes()),
        )
        .unwrap();
        assert_eq!(verify(&hs, &keys, NOW), invalid);
        // No kid.
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TYP.into());
        let no_kid = jsonwebtoken::encode(&header, &claims(NOW), &ours.encoding).unwrap();
        assert_eq!(verify(&no_kid, &keys, NOW), invalid);
    }

    #[test]
    fn garbage_of_any_shape_is_invalid() {
        let keys = KeySet::from_jwks(&jwks(&[&test_key("k1", 1)])).unwrap();
        let big = "a".repeat(5000);
        for token in ["", "...", "a.b.c", big.as_str(), "eyJhbGciOiJub25lIn0.e30."] {
            assert_eq!(
                verify(token, &keys, NOW),
                Err(Local::Refused(VerifyError::Invalid)),
                "{token:.20}"
            );
        }
    }

    #[test]
    fn only_ed25519_keys_with_a_kid_are_taken_from_the_jwks() {
        let good = test_key("k1", 1);
        let json = serde_json::json!({"keys": [
            good.jwk,
            {"kty": "OKP", "crv": "Ed25519", "x": good.jwk["x"], "alg": "EdDSA"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa", "alg": "RS256"},
            {"kty": "weird", "kid": "x"},
        ]});
        let keys = KeySet::from_jwks(json.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.contains("k1"));
        assert!(KeySet::from_jwks(b"{\"keys\": 5}").is_err());
    }
}
