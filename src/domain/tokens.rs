//! Access and refresh tokens: their claims, how they are signed, and how
//! they are verified. Validation is explicit: the algorithm is pinned, `typ`,
//! `iss` and `aud` are checked, and `exp`/`nbf` are compared with keyward's
//! clock and configured leeway (not jsonwebtoken's 60 s default).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::token_cache::{Verified, VerifiedTokens};

pub const ACCESS_TYP: &str = "at+jwt";

/// At most one re-read of the keys per this long for tokens naming a `kid`
/// the instance does not know (API.md section 2).
pub const KID_RELOAD_EVERY: Duration = Duration::from_secs(1);
pub const REFRESH_TYP: &str = "refresh+jwt";

/// The claims of an access token: everything a route needs, so verifying
/// one needs no database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// When the user signed in: the session's creation, in whole seconds,
    /// the same for every access token of the session. A token from before
    /// the claim existed reads as 0, so "signed in before T" refuses it.
    #[serde(default)]
    pub auth_time: i64,
    /// Not in the contract's list, but `/api/me` answers "from the token
    /// alone" and must name the user.
    pub username: String,
    pub name: Option<String>,
    pub admin: bool,
}

/// The claims of a refresh token: only what identifies the session; the
/// user is read from the database at every refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

trait Timed {
    fn iat(&self) -> i64;
    fn exp(&self) -> i64;
    fn nbf(&self) -> Option<i64>;
}

impl Timed for AccessClaims {
    fn iat(&self) -> i64 {
        self.iat
    }
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> Option<i64> {
        self.nbf
    }
}

impl Timed for RefreshClaims {
    fn iat(&self) -> i64 {
        self.iat
    }
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> Option<i64> {
        self.nbf
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sign a token: {0}")]
pub struct SignError(#[from] jsonwebtoken::errors::Error);

/// One key: the signing half (absent for keys that only verify) and the
/// verifying half.
pub struct Key {
    pub kid: Option<String>,
    /// The only algorithm this key signs and verifies with: a token naming
    /// the key under another algorithm is refused (no HS256 with an Ed25519
    /// key's public half).
    pub algorithm: Algorithm,
    /// From when (Unix seconds) the key signs: a key published ahead of its
    /// use verifies but does not sign before then.
    pub signs_from: i64,
    pub encoding: Option<EncodingKey>,
    pub decoding: DecodingKey,
    /// A retired key verifies until this time (Unix seconds), when every
    /// token it signed has expired; `None` while it signs.
    pub verify_until: Option<i64>,
    /// The public half as a JWK, for keys other services may verify with
    /// (never for an HMAC secret).
    pub public_jwk: Option<PublicJwk>,
}

impl Key {
    fn verifies_at(&self, now: i64) -> bool {
        self.verify_until.is_none_or(|until| now <= until)
    }
}

/// An Ed25519 public key as RFC 8037 writes it in a JWK Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub crv: &'static str,
    /// The raw 32-byte public key, base64url without padding.
    pub x: String,
    pub kid: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

impl PublicJwk {
    pub fn ed25519(kid: &str, public_key: &[u8]) -> Self {
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
    pub fn new(algorithm: Algorithm, keys: Vec<Key>) -> Option<Self> {
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
    fn signer_at(&self, iat: i64) -> Option<&Key> {
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| k.algorithm == self.algorithm && k.encoding.is_some());
        let first = candidates.clone().next();
        candidates.rfind(|k| k.signs_from <= iat).or(first)
    }

    /// Whether a key of this `kid` is in the set.
    fn knows(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// A single configured HS256 secret (no `kid`).
    pub fn from_secret(secret: &[u8]) -> Self {
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
    fn verifier(&self, kid: Option<&str>, now: i64) -> Option<&Key> {
        let key = match kid {
            Some(kid) => self.by_kid.get(kid).map(|&i| &self.keys[i]),
            None => self.keys.iter().find(|k| k.kid.is_none()),
        }?;
        key.verifies_at(now).then_some(key)
    }

    /// The public keys of every key that still verifies at `now`.
    fn public_jwks(&self, now: i64) -> Vec<PublicJwk> {
        self.keys
            .iter()
            .filter(|k| k.verifies_at(now))
            .filter_map(|k| k.public_jwk.clone())
            .collect()
    }

    /// How many keys still verify at `now`.
    fn verifying(&self, now: i64) -> usize {
        self.keys.iter().filter(|k| k.verifies_at(now)).count()
    }
}

/// What tokens say about their issuer and lifetimes.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl_seconds: i64,
    pub leeway_seconds: i64,
}

/// Signs and verifies keyward's tokens with the current key set, which a key
/// rotation may replace while the server runs.
pub struct Tokens {
    settings: TokenSettings,
    keys: RwLock<Arc<KeySet>>,
    /// Access tokens verified before (see `token_cache`).
    verified: VerifiedTokens,
    /// When the keys were last re-read for a token naming an unknown `kid`
    /// (see [`Tokens::reload_for_kid`]); held while such a read runs.
    kid_reload: Mutex<Option<Instant>>,
}

impl Tokens {
    pub fn new(settings: TokenSettings, keys: KeySet) -> Self {
        Self {
            settings,
            keys: RwLock::new(Arc::new(keys)),
            verified: VerifiedTokens::default(),
            kid_reload: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    pub fn replace_keys(&self, keys: KeySet) {
        let mut current = self.keys.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(keys);
        self.verified.clear();
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The public JWKs of the keys that verify at `now` (none for HMAC
    /// secrets), newest last: what `/.well-known/jwks.json` publishes.
    pub fn public_jwks(&self, now: i64) -> Vec<PublicJwk> {
        self.current_keys().public_jwks(now)
    }

    /// How many keys verify at `now`.
    pub fn verifying_keys(&self, now: i64) -> usize {
        self.current_keys().verifying(now)
    }

    /// The algorithm that signs (the discovery document names it).
    pub fn algorithm(&self) -> Algorithm {
        self.current_keys().algorithm
    }

    /// The `kid` tokens issued at `now` carry.
    pub fn signing_kid(&self, now: i64) -> Option<String> {
        self.current_keys().signer_at(now)?.kid.clone()
    }

    /// The `kid` a token names when no key of this set has it: another
    /// instance may have added that key since this set was read.
    pub fn unknown_kid(&self, token: &str) -> Option<String> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        (!self.current_keys().knows(&kid)).then_some(kid)
    }

    /// How long until the keys may be re-read for an unknown `kid` (zero
    /// while a read runs: wait for it in [`Tokens::reload_for_kid`]). A
    /// caller sleeps this long first, without holding a thread.
    pub fn kid_reload_wait(&self) -> Duration {
        match self.kid_reload.try_lock() {
            Ok(last) => last.map_or(Duration::ZERO, |at| {
                KID_RELOAD_EVERY.saturating_sub(at.elapsed())
            }),
            Err(_) => Duration::ZERO,
        }
    }

    /// Re-reads the keys (with `load`) for a token naming `kid`, at most
    /// once per [`KID_RELOAD_EVERY`]: a forged `kid` costs the database one
    /// read a second, however many arrive. A caller arriving while a read
    /// runs, or just after one, waits for it and takes its result. Returns
    /// whether `kid` is known afterwards.
    pub fn reload_for_kid(&self, kid: &str, load: impl FnOnce() -> Option<KeySet>) -> bool {
        let mut last = self.kid_reload.lock().unwrap_or_else(|e| e.into_inner());
        if self.current_keys().knows(kid) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < KID_RELOAD_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        if let Some(keys) = load() {
            self.replace_keys(keys);
        }
        self.current_keys().knows(kid)
    }

    pub fn sign_access(&self, claims: &AccessClaims) -> Result<String, SignError> {
        self.sign(ACCESS_TYP, claims)
    }

    pub fn sign_refresh(&self, claims: &RefreshClaims) -> Result<String, SignError> {
        self.sign(REFRESH_TYP, claims)
    }

    fn sign<C: Serialize + Timed>(&self, typ: &str, claims: &C) -> Result<String, SignError> {
        let keys = self.current_keys();
        let key = keys
            .signer_at(claims.iat())
            .ok_or_else(|| SignError(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()))?;
        let mut header = Header::new(key.algorithm);
        header.typ = Some(typ.to_string());
        header.kid = key.kid.clone();
        let encoding = key
            .encoding
            .as_ref()
            .ok_or_else(|| SignError(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()))?;
        Ok(jsonwebtoken::encode(&header, claims, encoding)?)
    }

    /// Every request of every service verifies an access token: a token
    /// verified before skips the signature and the parsing (which cannot
    /// have changed for the same string) but not its times nor its key.
    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        self.verify_access_and_kid(token, now)
            .map(|(claims, _)| claims)
    }

    /// [`verify_access`](Self::verify_access), with the `kid` of the key
    /// that verified the token (for the revocation set's key entries).
    pub fn verify_access_and_kid(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(AccessClaims, Option<String>), TokenError> {
        if let Some(hit) = self.verified.get(token) {
            if self
                .current_keys()
                .verifier(hit.kid.as_deref(), now)
                .is_some()
            {
                self.check_times(&hit.claims, now)?;
                return Ok((hit.claims.clone(), hit.kid.clone()));
            }
        }
        let (claims, kid) = self.verify::<AccessClaims>(token, ACCESS_TYP, now)?;
        self.verified.insert(
            token,
            Verified {
                claims: claims.clone(),
                kid: kid.clone(),
            },
        );
        Ok((claims, kid))
    }

    pub fn verify_refresh(&self, token: &str, now: i64) -> Result<RefreshClaims, TokenError> {
        self.verify(token, REFRESH_TYP, now)
            .map(|(claims, _)| claims)
    }

    /// The claims of a valid token and the `kid` of the key that verified it.
    fn verify<C: DeserializeOwned + Timed>(
        &self,
        token: &str,
        typ: &str,
        now: i64,
    ) -> Result<(C, Option<String>), TokenError> {
        // Bound the work a hostile token can cause before any parsing.
        if token.is_empty() || token.len() > 4096 {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.typ.as_deref() != Some(typ) {
            return Err(TokenError::Invalid);
        }
        let keys = self.current_keys();
        let key = keys
            .verifier(header.kid.as_deref(), now)
            .ok_or(TokenError::Invalid)?;
        if header.alg != key.algorithm {
            return Err(TokenError::Invalid);
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = 0;
        // exp and nbf are checked below against keyward's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<C>(token, &key.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        self.check_times(&claims, now)?;
        Ok((claims, header.kid))
    }

    /// `nbf` and `exp` against keyward's clock and leeway.
    fn check_times(&self, claims: &impl Timed, now: i64) -> Result<(), TokenError> {
        let leeway = self.settings.leeway_seconds;
        if claims.nbf().is_some_and(|nbf| nbf > now + leeway) {
            return Err(TokenError::Invalid);
        }
        // Saturating: `exp` is the token's, and may be any number.
        if claims.exp().saturating_add(leeway) < now {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// Tokens with keyward's default settings over `keys` (also used by
    /// `services::keys`'s tests).
    pub(crate) fn tokens_with(keys: KeySet) -> Tokens {
        Tokens::new(
            TokenSettings {
                issuer: "keyward".into(),
                audience: "keyward".into(),
                access_ttl_seconds: 900,
                leeway_seconds: 5,
            },
            keys,
        )
    }

    fn tokens() -> Tokens {
        tokens_with(KeySet::from_secret(SECRET))
    }

    pub(crate) fn access(now: i64) -> AccessClaims {
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

    fn refresh(now: i64) -> RefreshClaims {
        RefreshClaims {
            iss: "keyward".into(),
            aud: "keyward".into(),
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: now,
            exp: now + 60,
            nbf: None,
        }
    }

    #[test]
    fn a_signed_access_token_verifies() {
        let t = tokens();
        let claims = access(1_000_000);
        let token = t.sign_access(&claims).unwrap();
        assert_eq!(t.verify_access(&token, 1_000_000).unwrap(), claims);
    }

    #[test]
    fn signing_is_deterministic() {
        let t = tokens();
        let claims = refresh(1_000_000);
        assert_eq!(
            t.sign_refresh(&claims).unwrap(),
            t.sign_refresh(&claims).unwrap()
        );
    }

    #[test]
    fn refresh_and_access_tokens_are_not_interchangeable() {
        let t = tokens();
        let at = t.sign_access(&access(1_000_000)).unwrap();
        let rt = t.sign_refresh(&refresh(1_000_000)).unwrap();
        assert_eq!(t.verify_refresh(&at, 1_000_000), Err(TokenError::Invalid));
        assert_eq!(t.verify_access(&rt, 1_000_000), Err(TokenError::Invalid));
    }

    #[test]
    fn expiry_honours_the_configured_leeway() {
        let t = tokens();
        let claims = access(1_000_000);
        let token = t.sign_access(&claims).unwrap();
        assert!(t.verify_access(&token, claims.exp + 5).is_ok());
        assert_eq!(
            t.verify_access(&token, claims.exp + 6),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_future_nbf_is_refused() {
        let t = tokens();
        let mut claims = access(1_000_000);
        claims.nbf = Some(1_000_100);
        let token = t.sign_access(&claims).unwrap();
        assert_eq!(t.verify_access(&token, 1_000_000), Err(TokenError::Invalid));
    }

    #[test]
    fn foreign_issuer_audience_and_key_are_refused() {
        let t = tokens();
        let now = 1_000_000;
        for mutate in [
            |c: &mut AccessClaims| c.iss = "else".into(),
            |c: &mut AccessClaims| c.aud = "else".into(),
        ] {
            let mut claims = access(now);
            mutate(&mut claims);
            let token = t.sign_access(&claims).unwrap();
            assert_eq!(t.verify_access(&token, now), Err(TokenError::Invalid));
        }
        let other = Tokens::new(t.settings().clone(), KeySet::from_secret(&[7u8; 32]));
        let token = other.sign_access(&access(now)).unwrap();
        assert_eq!(t.verify_access(&token, now), Err(TokenError::Invalid));
    }

    #[test]
    fn an_unknown_kid_is_refused() {
        let t = tokens();
        let now = 1_000_000;
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TYP.into());
        header.kid = Some("not-ours".into());
        let token =
            jsonwebtoken::encode(&header, &access(now), &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(t.verify_access(&token, now), Err(TokenError::Invalid));
    }

    #[test]
    fn an_unknown_kid_reloads_the_keys_at_most_once_a_second() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let t = Arc::new(tokens());
        let reads = Arc::new(AtomicUsize::new(0));
        let slow_read = |reads: Arc<AtomicUsize>| {
            move || {
                reads.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300));
                None
            }
        };
        // A second caller arriving while the read runs waits for it and
        // reads nothing itself.
        let first = {
            let (t, reads) = (t.clone(), reads.clone());
            std::thread::spawn(move || t.reload_for_kid("k1", slow_read(reads)))
        };
        std::thread::sleep(Duration::from_millis(100));
        let waited = std::time::Instant::now();
        assert!(!t.reload_for_kid("k2", slow_read(reads.clone())));
        assert!(
            waited.elapsed() >= Duration::from_millis(150),
            "did not wait for the read"
        );
        assert!(!first.join().unwrap());
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Within the second, no read; the caller is told how long to wait.
        assert!(!t.reload_for_kid("k3", slow_read(reads.clone())));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        let wait = t.kid_reload_wait();
        assert!(
            wait > Duration::ZERO && wait <= KID_RELOAD_EVERY,
            "{wait:?}"
        );
        std::thread::sleep(wait);
        assert_eq!(t.kid_reload_wait(), Duration::ZERO);
        t.reload_for_kid("k4", slow_read(reads.clone()));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn garbage_of_any_shape_is_invalid() {
        let t = tokens();
        let big = "a".repeat(10_000);
        for token in [
            "",
            "...",
            "a.b.c",
            "not.a.jwt",
            big.as_str(),
            "eyJhbGciOiJub25lIn0.e30.",
        ] {
            assert_eq!(
                t.verify_access(token, 0),
                Err(TokenError::Invalid),
                "{token:.20}"
            );
        }
    }
}
