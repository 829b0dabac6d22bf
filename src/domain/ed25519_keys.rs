//! Ed25519 keys kept ready for jsonwebtoken. Its RustCrypto backend builds
//! the key objects from bytes at every call: a signing key from its PKCS#8
//! document, which derives the public key (a scalar multiplication costing
//! about as much as the signature itself), and a verifying key from its 32
//! bytes, which decompresses a curve point. A refresh signs twice and
//! verifies once, so that was a large part of its CPU. This provider keeps
//! the objects per key and verifies exactly as the RustCrypto backend does;
//! it signs with AWS-LC (`aws-lc-rs`), whose Ed25519 signature takes less
//! than half of ed25519-dalek's time on x86_64 (7.4 µs against 16 µs here)
//! and, Ed25519 being deterministic, gives the very same bytes. Every other
//! algorithm goes to the RustCrypto backend unchanged.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use aws_lc_rs::signature::Ed25519KeyPair;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use jsonwebtoken::crypto::{rust_crypto, CryptoProvider, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

/// More keys than a deployment ever verifies with at once (the signing key,
/// the next one and retired ones); when full, a cache starts over.
const MAX_KEYS: usize = 64;

/// Makes this the process's provider. Call before the first token is signed
/// or verified: once jsonwebtoken has chosen its default, it keeps it (and
/// tokens then still work, only without the kept keys).
pub(crate) fn install() {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| CryptoProvider {
        signer_factory,
        verifier_factory,
        key_utils: rust_crypto::DEFAULT_PROVIDER.key_utils.clone(),
    });
    // Err: installed already (by an earlier call), or another default won.
    let _ = provider.install_default();
}

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::EdDSA {
        return (rust_crypto::DEFAULT_PROVIDER.signer_factory)(algorithm, key);
    }
    if key.family() != AlgorithmFamily::Ed {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    static SIGNING: OnceLock<KeyCache<Vec<u8>, Ed25519KeyPair>> = OnceLock::new();
    let der = key.as_bytes();
    let signing = SIGNING
        .get_or_init(KeyCache::default)
        .get_or_make(der, || {
            // The document is read as the RustCrypto backend reads it (so
            // the same keys are accepted); AWS-LC gets only the seed.
            let dalek = SigningKey::from_pkcs8_der(der).map_err(|_| ErrorKind::InvalidEddsaKey)?;
            Ed25519KeyPair::from_seed_unchecked(dalek.as_bytes())
                .map_err(|_| ErrorKind::InvalidEddsaKey.into())
        })?;
    Ok(Box::new(KeptSigner(signing)))
}

fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::EdDSA {
        return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key);
    }
    if key.family() != AlgorithmFamily::Ed {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    static VERIFYING: OnceLock<KeyCache<[u8; 32], VerifyingKey>> = OnceLock::new();
    let raw = key.try_get_as_bytes()?;
    let raw: [u8; 32] = raw
        .get(..32)
        .and_then(|b| b.try_into().ok())
        .ok_or(ErrorKind::InvalidEddsaKey)?;
    let verifying = VERIFYING
        .get_or_init(KeyCache::default)
        .get_or_make(&raw, || {
            VerifyingKey::from_bytes(&raw).map_err(|_| ErrorKind::InvalidEddsaKey.into())
        })?;
    Ok(Box::new(KeptVerifier(verifying)))
}

/// Key objects by the bytes they were made from.
struct KeyCache<B, K> {
    keys: RwLock<HashMap<B, Arc<K>>>,
}

impl<B, K> Default for KeyCache<B, K> {
    fn default() -> Self {
        Self {
            keys: RwLock::new(HashMap::new()),
        }
    }
}

impl<B: std::hash::Hash + Eq, K> KeyCache<B, K> {
    fn get_or_make<Q>(&self, bytes: &Q, make: impl FnOnce() -> Result<K>) -> Result<Arc<K>>
    where
        B: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = B> + ?Sized,
    {
        if let Some(key) = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(bytes)
        {
            return Ok(key.clone());
        }
        let key = Arc::new(make()?);
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(bytes.to_owned(), key.clone());
        Ok(key)
    }
}

struct KeptSigner(Arc<Ed25519KeyPair>);

impl Signer<Vec<u8>> for KeptSigner {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(message).as_ref().to_vec())
    }
}

impl JwtSigner for KeptSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

struct KeptVerifier(Arc<VerifyingKey>);

impl Verifier<Vec<u8>> for KeptVerifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), signature::Error> {
        self.0.verify(message, &Signature::from_slice(signature)?)
    }
}

impl JwtVerifier for KeptVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, encode, Header, Validation};
    use serde_json::json;

    fn keys() -> (EncodingKey, DecodingKey) {
        let signing = SigningKey::from_bytes(&[7; 32]);
        let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&signing).unwrap();
        let public = signing.verifying_key().to_bytes();
        (
            EncodingKey::from_ed_der(der.as_bytes()),
            DecodingKey::from_ed_der(&public),
        )
    }

    #[test]
    fn kept_keys_sign_and_verify_as_the_rust_crypto_backend_does() {
        let (encoding, decoding) = keys();
        let message = b"header.claims";
        let kept = signer_factory(&Algorithm::EdDSA, &encoding).unwrap();
        let plain =
            (rust_crypto::DEFAULT_PROVIDER.signer_factory)(&Algorithm::EdDSA, &encoding).unwrap();
        let signature = kept.try_sign(message).unwrap();
        // Ed25519 signatures are deterministic: AWS-LC gives the very same
        // bytes as ed25519-dalek, for any message length.
        let long = vec![b'x'; 1000];
        for m in [&b""[..], &message[..], &long[..]] {
            assert_eq!(kept.try_sign(m).unwrap(), plain.try_sign(m).unwrap());
        }
        let verifier = verifier_factory(&Algorithm::EdDSA, &decoding).unwrap();
        assert!(verifier.verify(message, &signature).is_ok());
        let mut forged = signature.clone();
        forged[0] ^= 1;
        assert!(verifier.verify(message, &forged).is_err());
        assert!(verifier.verify(b"header.other", &signature).is_err());
    }

    #[test]
    fn tokens_round_trip_through_the_installed_provider() {
        install();
        let (encoding, decoding) = keys();
        let claims = json!({"sub": "someone", "exp": 4_000_000_000_i64});
        let token = encode(&Header::new(Algorithm::EdDSA), &claims, &encoding).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_aud = false;
        let read = decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(read.claims, claims);
        let other =
            DecodingKey::from_ed_der(&SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes());
        assert!(decode::<serde_json::Value>(&token, &other, &validation).is_err());
    }

    #[test]
    fn other_algorithms_and_mismatched_keys_go_where_they_went() {
        let hmac = EncodingKey::from_secret(b"secret");
        assert!(signer_factory(&Algorithm::HS256, &hmac).is_ok());
        assert!(signer_factory(&Algorithm::EdDSA, &hmac).is_err());
        let (_, decoding) = keys();
        assert!(verifier_factory(&Algorithm::HS256, &decoding).is_err());
    }
}
