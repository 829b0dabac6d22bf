//! Signing and verifying, the remembered tokens included.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::*;
// `services::keys`'s tests use it with `tokens_with`.
pub(crate) use crate::domain::claims::fixtures::access;
use crate::domain::claims::fixtures::refresh;

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

/// `token` with its signature's last character changed.
fn with_last_char_changed(token: &str) -> String {
    let mut forged = token.to_owned();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    forged
}

fn tokens() -> Tokens {
    tokens_with(KeySet::from_secret(SECRET))
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

#[test]
fn a_remembered_token_still_expires() {
    let t = tokens();
    let c = access(1_000_000);
    let token = t.sign_access(&c).unwrap();
    assert_eq!(t.verify_access(&token, 1_000_000).unwrap(), c);
    assert_eq!(t.verify_access(&token, 1_000_000).unwrap(), c);
    assert_eq!(
        t.verify_access(&token, 1_000_000 + 900 + 6),
        Err(TokenError::Expired)
    );
}

#[test]
fn a_remembered_token_stops_verifying_when_its_key_is_replaced() {
    let t = tokens();
    let token = t.sign_access(&access(1_000_000)).unwrap();
    assert!(t.verify_access(&token, 1_000_000).is_ok());
    t.replace_keys(KeySet::from_secret(b"another secret, also 32 bytes long"));
    assert_eq!(t.verify_access(&token, 1_000_000), Err(TokenError::Invalid));
}

#[test]
fn only_the_exact_token_string_hits() {
    let t = tokens();
    let token = t.sign_access(&access(1_000_000)).unwrap();
    assert!(t.verify_access(&token, 1_000_000).is_ok());
    let forged = with_last_char_changed(&token);
    assert_eq!(
        t.verify_access(&forged, 1_000_000),
        Err(TokenError::Invalid)
    );
}

#[test]
fn a_token_is_found_by_its_bytes_and_bytes_that_are_not_text_are_invalid() {
    let t = tokens();
    let c = access(1_000_000);
    let token = t.sign_access(&c).unwrap();
    let verified = t
        .verify_access_and_kid(token.as_bytes(), 1_000_000)
        .unwrap();
    assert_eq!(verified.claims, c);
    let again = t
        .verify_access_and_kid(token.as_bytes(), 1_000_000)
        .unwrap();
    assert!(Arc::ptr_eq(&verified, &again));
    let mut not_text = token.into_bytes();
    *not_text.last_mut().unwrap() = 0xff;
    assert_eq!(
        t.verify_access_and_kid(&not_text, 1_000_000).err(),
        Some(TokenError::Invalid)
    );
}

#[test]
fn a_refresh_token_signed_here_skips_its_verification_once() {
    let t = tokens();
    let claims = refresh(1_000_000);
    let token = t.sign_refresh(&claims).unwrap();
    assert!(t.issued.holds(&token));
    assert_eq!(t.verify_refresh(&token, 1_000_000).unwrap(), claims);
    assert!(!t.issued.holds(&token), "taken at its first use");
    // Presented again (a retry), it is verified as any other token.
    assert_eq!(t.verify_refresh(&token, 1_000_000).unwrap(), claims);
}

#[test]
fn a_remembered_refresh_token_still_expires_and_is_never_an_access_token() {
    let t = tokens();
    let claims = refresh(1_000_000);
    let token = t.sign_refresh(&claims).unwrap();
    assert_eq!(t.verify_access(&token, 1_000_000), Err(TokenError::Invalid));
    assert_eq!(
        t.verify_refresh(&token, claims.exp + 6),
        Err(TokenError::Expired)
    );
    let mut early = refresh(1_000_000);
    early.nbf = Some(1_000_100);
    let token = t.sign_refresh(&early).unwrap();
    assert_eq!(
        t.verify_refresh(&token, 1_000_000),
        Err(TokenError::Invalid)
    );
}

#[test]
fn a_remembered_refresh_token_stops_verifying_when_its_key_is_replaced() {
    let t = tokens();
    let token = t.sign_refresh(&refresh(1_000_000)).unwrap();
    t.replace_keys(KeySet::from_secret(b"another secret, also 32 bytes long"));
    assert_eq!(
        t.verify_refresh(&token, 1_000_000),
        Err(TokenError::Invalid)
    );
}

#[test]
fn a_refresh_token_remembered_under_replaced_keys_is_verified_in_full() {
    let t = tokens();
    let claims = refresh(1_000_000);
    let token = t.sign_refresh(&claims).unwrap();
    // Signed just before a key change and remembered just after it (the
    // change empties the table): the entry names the old set, so the token
    // is verified, and under the same secret it verifies.
    let entry = t.issued.take(&token).unwrap();
    t.replace_keys(KeySet::from_secret(SECRET));
    t.issued.remember(&token, entry);
    assert_eq!(t.verify_refresh(&token, 1_000_000).unwrap(), claims);
    assert!(!t.issued.holds(&token));
    // Under another secret it is refused, though it was remembered.
    let token = t.sign_refresh(&claims).unwrap();
    let entry = t.issued.take(&token).unwrap();
    t.replace_keys(KeySet::from_secret(b"another secret, also 32 bytes long"));
    t.issued.remember(&token, entry);
    assert_eq!(
        t.verify_refresh(&token, 1_000_000),
        Err(TokenError::Invalid)
    );
}

#[test]
fn refresh_tokens_verification_would_refuse_are_not_remembered() {
    let t = tokens();
    for mutate in [
        |c: &mut RefreshClaims| c.iss = "else".into(),
        |c: &mut RefreshClaims| c.aud = "else".into(),
    ] {
        let mut claims = refresh(1_000_000);
        mutate(&mut claims);
        let token = t.sign_refresh(&claims).unwrap();
        assert!(!t.issued.holds(&token));
        assert_eq!(
            t.verify_refresh(&token, 1_000_000),
            Err(TokenError::Invalid)
        );
    }
    let token = t.sign_refresh(&refresh(1_000_000)).unwrap();
    let forged = with_last_char_changed(&token);
    assert_eq!(
        t.verify_refresh(&forged, 1_000_000),
        Err(TokenError::Invalid)
    );
}
