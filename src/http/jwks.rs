//! `GET /.well-known/jwks.json`: the public keys other services verify
//! keyward's access tokens with (RFC 7517). Served from the key set in
//! memory, without a database read; under HS256 it is empty, since a secret
//! is never published.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::domain::tokens::PublicJwk;

/// A JWK Set (RFC 7517).
#[derive(Serialize, ToSchema)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

/// An Ed25519 public key as RFC 8037 writes it in a JWK Set.
#[derive(Serialize, ToSchema)]
#[schema(as = PublicJwk)]
struct Jwk {
    kty: &'static str,
    crv: &'static str,
    /// The raw 32-byte public key, base64url without padding.
    x: String,
    kid: String,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
}

impl From<PublicJwk> for Jwk {
    fn from(key: PublicJwk) -> Self {
        let PublicJwk {
            kty,
            crv,
            x,
            kid,
            alg,
            use_,
        } = key;
        Self {
            kty,
            crv,
            x,
            kid,
            alg,
            use_,
        }
    }
}

/// The keys that verify now: the signing key and retired keys whose tokens
/// may still be presented.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "keys",
    responses((status = 200, body = JwkSet,
        description = "The public keys that verify access tokens; empty under HS256"))
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let now = state.clock.now().timestamp();
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            // How long a verifier may cache the set: a rotated-in key is
            // published this long before it signs, so a cached set always
            // holds the key of any token; retired keys stay published
            // until their last token has expired.
            CacheDirective::MaxAge(
                u32::try_from(state.settings.auth.key_publish_seconds).unwrap_or(0),
            ),
        ]))
        .json(JwkSet {
            keys: state
                .tokens
                .public_jwks(now)
                .into_iter()
                .map(Jwk::from)
                .collect(),
        })
}
