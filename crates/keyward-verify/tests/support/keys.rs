//! Ed25519 test keys and tokens, shared by the unit tests (through a
//! `#[path]` module) and the integration tests.

#![allow(dead_code)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// DER of a PKCS#8 Ed25519 private key, before its 32-byte seed.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An Ed25519 key made from a seed: its signing half and its JWK.
pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: serde_json::Value,
}

pub fn test_key(kid: &str, seed: u8) -> TestKey {
    use base64::Engine;
    let seed = [seed; 32];
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let mut pkcs8 = PKCS8_PREFIX.to_vec();
    pkcs8.extend_from_slice(&seed);
    let x =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
    TestKey {
        kid: kid.into(),
        encoding: EncodingKey::from_ed_der(&pkcs8),
        jwk: serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"
        }),
    }
}

/// A JWK Set of these keys.
pub fn jwks(keys: &[&TestKey]) -> Vec<u8> {
    let keys: Vec<_> = keys.iter().map(|k| k.jwk.clone()).collect();
    serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
}

/// The system time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a keyward access token issued at `now`, as JSON.
pub fn claims_json(now: i64) -> serde_json::Value {
    serde_json::json!({
        "iss": "keyward", "aud": "keyward",
        "sub": uuid::Uuid::new_v4(), "sid": uuid::Uuid::new_v4(), "jti": uuid::Uuid::new_v4(),
        "iat": now, "exp": now + 900, "auth_time": now,
        "username": "jon", "name": "Jon", "admin": false,
    })
}

/// Signs `claims` with `key`, header `typ` as given and the key's `kid`.
pub fn sign(key: &TestKey, typ: &str, claims: &impl serde::Serialize) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(typ.into());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}
