//! Signing and verifying keyward's tokens with the current key set, which a
//! key rotation may replace while the server runs. Validation is explicit:
//! the algorithm is pinned to the key, and `typ`, `iss` and `aud` are
//! checked; times are checked as [`Timed`] says.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, Header};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::claims::{Timed, ACCESS_TYP, REFRESH_TYP};
use super::issued_tokens::{Issued, IssuedTokens};
use super::token_cache::{Verified, VerifiedTokens};

// The claims and keys are used with `Tokens` everywhere: one path for all.
pub(crate) use super::claims::{AccessClaims, RefreshClaims, TokenError};
pub(crate) use super::key_set::{Key, KeySet, PublicJwk};

/// At most one re-read of the keys per this long for tokens naming a `kid`
/// the instance does not know (API.md section 2).
pub(crate) const KID_RELOAD_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
#[error("cannot sign a token: {0}")]
pub struct SignError(#[from] jsonwebtoken::errors::Error);

/// What tokens say about their issuer and lifetimes.
#[derive(Debug, Clone)]
pub(crate) struct TokenSettings {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) access_ttl_seconds: i64,
    pub(crate) leeway_seconds: i64,
}

/// Signs and verifies keyward's tokens with the current key set, which a key
/// rotation may replace while the server runs.
pub struct Tokens {
    settings: TokenSettings,
    keys: RwLock<Arc<KeySet>>,
    /// Access tokens verified before (see `token_cache`).
    verified: VerifiedTokens,
    /// Refresh tokens signed here and not yet presented (see `issued_tokens`).
    issued: IssuedTokens,
    /// When the keys were last re-read for a token naming an unknown `kid`
    /// (see [`Tokens::reload_for_kid`]); held while such a read runs.
    kid_reload: Mutex<Option<Instant>>,
}

impl Tokens {
    pub(crate) fn new(settings: TokenSettings, keys: KeySet) -> Self {
        super::ed25519_keys::install();
        Self {
            settings,
            keys: RwLock::new(Arc::new(keys)),
            verified: VerifiedTokens::default(),
            issued: IssuedTokens::default(),
            kid_reload: Mutex::new(None),
        }
    }

    pub(crate) fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    pub(crate) fn replace_keys(&self, keys: KeySet) {
        let mut current = self.keys.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(keys);
        self.verified.clear();
        self.issued.clear();
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The public JWKs of the keys that verify at `now` (none for HMAC
    /// secrets), newest last: what `/.well-known/jwks.json` publishes.
    pub(crate) fn public_jwks(&self, now: i64) -> Vec<PublicJwk> {
        self.current_keys().public_jwks(now)
    }

    /// How many keys verify at `now`.
    pub(crate) fn verifying_keys(&self, now: i64) -> usize {
        self.current_keys().verifying(now)
    }

    /// The algorithm that signs (the discovery document names it).
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.current_keys().algorithm()
    }

    /// The `kid` tokens issued at `now` carry (the key rotation's tests ask).
    #[cfg(test)]
    pub(crate) fn signing_kid(&self, now: i64) -> Option<String> {
        self.current_keys().signer_at(now)?.kid.clone()
    }

    /// The `kid` a token names when no key of this set has it: another
    /// instance may have added that key since this set was read.
    pub(crate) fn unknown_kid(&self, token: &str) -> Option<String> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        (!self.current_keys().knows(&kid)).then_some(kid)
    }

    /// How long until the keys may be re-read for an unknown `kid` (zero
    /// while a read runs: wait for it in [`Tokens::reload_for_kid`]). A
    /// caller sleeps this long first, without holding a thread.
    pub(crate) fn kid_reload_wait(&self) -> Duration {
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
    pub(crate) fn reload_for_kid(&self, kid: &str, load: impl FnOnce() -> Option<KeySet>) -> bool {
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
        self.sign(&self.current_keys(), ACCESS_TYP, claims)
            .map(|(token, _)| token)
    }

    /// Signs a refresh token and remembers it: the refresh that presents
    /// exactly this string next needs no signature check (see
    /// [`verify_refresh`](Self::verify_refresh)).
    pub(crate) fn sign_refresh(&self, claims: &RefreshClaims) -> Result<String, SignError> {
        let keys = self.current_keys();
        let (token, key) = self.sign(&keys, REFRESH_TYP, claims)?;
        // Remembered only if verification would take it: this instance
        // signs no other, but a caller could pass foreign claims.
        if claims.iss == self.settings.issuer && claims.aud == self.settings.audience {
            self.issued
                .remember(&token, Issued::new(claims, &keys, key));
        }
        Ok(token)
    }

    /// The token and the key of `keys` that signed it.
    fn sign<'k, C: Serialize + Timed>(
        &self,
        keys: &'k KeySet,
        typ: &str,
        claims: &C,
    ) -> Result<(String, &'k Key), SignError> {
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
        Ok((jsonwebtoken::encode(&header, claims, encoding)?, key))
    }

    /// Every request of every service verifies an access token: a token
    /// verified before skips the signature and the parsing (which cannot
    /// have changed for the same string) but not its times nor its key.
    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        self.verify_access_and_kid(token.as_bytes(), now)
            .map(|verified| verified.claims.clone())
    }

    /// [`verify_access`](Self::verify_access), with the `kid` of the key
    /// that verified the token (for the revocation set's key entries), for
    /// a token as a request carried it: one verified before is found by its
    /// bytes, and only another is checked to be text (that check was 330
    /// instructions of an `/api/me`, counted with callgrind).
    pub(crate) fn verify_access_and_kid(
        &self,
        token: &[u8],
        now: i64,
    ) -> Result<Arc<Verified>, TokenError> {
        let keys = self.current_keys();
        if let Some(hit) = self.verified.get(token) {
            if hit.key_verifies(&keys, now) {
                hit.claims.check_times(now, self.settings.leeway_seconds)?;
                return Ok(hit);
            }
        }
        let token = std::str::from_utf8(token).map_err(|_| TokenError::Invalid)?;
        let (claims, key) = self.verify_with::<AccessClaims>(&keys, token, ACCESS_TYP, now)?;
        let verified = Arc::new(Verified::new(claims, &keys, key));
        self.verified.insert(token, Arc::clone(&verified));
        Ok(verified)
    }

    /// A refresh token this instance signed is taken from those it
    /// remembers: the same bytes it signed carry a valid signature, so only
    /// its times are checked, under the key set that signed it (after a key
    /// change it is verified in full, which refuses a key revoked or retired
    /// since). Any other token is verified.
    pub(crate) fn verify_refresh(
        &self,
        token: &str,
        now: i64,
    ) -> Result<RefreshClaims, TokenError> {
        let keys = self.current_keys();
        let (iss, aud) = (&self.settings.issuer, &self.settings.audience);
        if let Some(issued) = self.issued.take(token) {
            if let Some(claims) = issued.claims(&keys, now, iss, aud) {
                claims.check_times(now, self.settings.leeway_seconds)?;
                return Ok(claims);
            }
        }
        self.verify_with(&keys, token, REFRESH_TYP, now)
            .map(|(claims, _)| claims)
    }

    /// The claims of a valid token and the key in `keys` that verified it
    /// (whose `kid` is the token's).
    fn verify_with<'k, C: DeserializeOwned + Timed>(
        &self,
        keys: &'k KeySet,
        token: &str,
        typ: &str,
        now: i64,
    ) -> Result<(C, &'k Key), TokenError> {
        if token.is_empty() || token.len() > keyward_claims::MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.typ.as_deref() != Some(typ) {
            return Err(TokenError::Invalid);
        }
        let key = keys
            .verifier(header.kid.as_deref(), now)
            .ok_or(TokenError::Invalid)?;
        if header.alg != key.algorithm {
            return Err(TokenError::Invalid);
        }
        let validation = keyward_claims::validation(
            key.algorithm,
            &self.settings.issuer,
            &self.settings.audience,
        );
        let claims = jsonwebtoken::decode::<C>(token, &key.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        claims.check_times(now, self.settings.leeway_seconds)?;
        Ok((claims, key))
    }
}

#[cfg(test)]
pub(crate) mod tests;
