//! The routes for services that verify tokens (API.md section 7): the
//! discovery document and RFC 7662 introspection. Both answer from memory.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::tokens::AccessClaims;
use crate::error::ApiError;
use crate::http::doc::{BodyErrors, ErrorBody};
use crate::http::extract::access::{stale, verify_live_access, AccessRefusal};
use crate::http::extract::service::FormCredentials;
use crate::http::extract::{Body, ServiceClient};
use crate::http::AppState;

type State = web::Data<AppState>;

/// How long a client may cache the discovery document: it changes only
/// with the configuration.
const DISCOVERY_MAX_AGE_SECONDS: u32 = 300;

/// Where a service finds keyward's keys, introspection and revocation feed.
#[derive(Serialize, ToSchema)]
struct Discovery {
    /// `auth.issuer`: the tokens' `iss`.
    issuer: String,
    jwks_uri: String,
    introspection_endpoint: String,
    revocation_endpoint_feed: String,
    revocation_endpoint_stream: String,
    #[schema(value_type = Vec<String>, example = json!(["client_secret_basic", "client_secret_post"]))]
    token_endpoint_auth_methods_supported: [&'static str; 2],
    /// The configured algorithm, e.g. `EdDSA`.
    #[schema(value_type = Vec<String>, example = json!(["EdDSA"]))]
    id_token_signing_alg_values_supported: [jsonwebtoken::Algorithm; 1],
}

/// The discovery document (OpenID Connect Discovery 1.0's names); URLs are
/// absolute, from `server.public_url`.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "keys",
    responses((status = 200, body = Discovery, description = "The discovery document")))]
pub(crate) async fn discovery(state: State) -> HttpResponse {
    let base = &state.public_url;
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(DISCOVERY_MAX_AGE_SECONDS),
        ]))
        .json(Discovery {
            issuer: state.settings.auth.issuer.clone(),
            jwks_uri: format!("{base}/.well-known/jwks.json"),
            introspection_endpoint: format!("{base}/oauth/introspect"),
            revocation_endpoint_feed: format!("{base}/revocations"),
            revocation_endpoint_stream: format!("{base}/revocations/stream"),
            token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
            id_token_signing_alg_values_supported: [state.tokens.algorithm()],
        })
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct IntrospectionRequest {
    /// The token to look at; anything but a live access token of this
    /// keyward is `{"active": false}`.
    #[schema(required = true, nullable = false)]
    token: Option<String>,
    /// Ignored: only access tokens are ever active.
    #[allow(dead_code)] // Accepted, never read (RFC 7662 2.1).
    token_type_hint: Option<String>,
    /// With `client_secret`, instead of HTTP Basic (`client_secret_post`).
    client_id: Option<String>,
    client_secret: Option<String>,
}

impl IntrospectionRequest {
    /// The credentials given as form fields (`client_secret_post`).
    fn credentials(&self) -> FormCredentials<'_> {
        FormCredentials {
            client_id: self.client_id.as_deref(),
            client_secret: self.client_secret.as_deref(),
        }
    }
}

/// A live access token's claims (RFC 7662 2.2).
#[derive(Serialize, ToSchema)]
struct ActiveToken {
    /// Always `true`.
    active: bool,
    #[schema(example = "access_token")]
    token_type: &'static str,
    sub: Uuid,
    sid: Uuid,
    username: String,
    name: Option<String>,
    admin: bool,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    /// When the user signed in (the session's creation).
    auth_time: i64,
    jti: Uuid,
}

impl From<AccessClaims> for ActiveToken {
    fn from(c: AccessClaims) -> Self {
        Self {
            active: true,
            token_type: "access_token",
            sub: c.sub,
            sid: c.sid,
            username: c.username,
            name: c.name,
            admin: c.admin,
            iss: c.iss,
            aud: c.aud,
            iat: c.iat,
            exp: c.exp,
            auth_time: c.auth_time,
            jti: c.jti,
        }
    }
}

/// Anything else: nothing is said about it.
#[derive(Serialize, ToSchema)]
struct InactiveToken {
    /// Always `false`.
    active: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum Introspection {
    Active(ActiveToken),
    Inactive(InactiveToken),
}

/// RFC 7662 introspection for services: whether a token is a live access
/// token of this keyward (signature, `typ`, `iss`, `aud`, `exp` with the
/// leeway, and the revocation set), answered without a database read. When
/// the set cannot be confirmed current (`revocation.max_staleness_seconds`)
/// the answer is `503`, as on the access-token routes: neither "active" nor
/// "inactive" would be true.
#[utoipa::path(post, path = "/oauth/introspect", tag = "services",
    request_body(content(
        (IntrospectionRequest = "application/x-www-form-urlencoded"),
        (IntrospectionRequest = "application/json"))),
    security(("service" = [])),
    responses(
        (status = 200, body = Introspection,
         description = "The token's claims, or {\"active\": false} (Cache-Control: no-store)"),
        (status = 400, body = ErrorBody, description = "invalid_request: token is missing"),
        (status = 401, body = ErrorBody,
         description = "invalid_client: service credentials missing or wrong (WWW-Authenticate: Basic)"),
        (status = 429, body = ErrorBody,
         description = "rate_limited: too many failed credentials from this address (Retry-After)"),
        BodyErrors,
    ))]
pub(crate) async fn introspect(
    state: State,
    req: HttpRequest,
    body: Body<IntrospectionRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    ServiceClient::authenticate(&req, &state, body.credentials()).await?;
    let token = body
        .token
        .ok_or_else(|| ApiError::invalid_request("token is required"))?;
    let answer = match verify_live_access(&state, &token).await {
        Ok(verified) => Introspection::Active(verified.claims.clone().into()),
        Err(AccessRefusal::Stale) => return Err(stale(&state)),
        Err(AccessRefusal::Token(_) | AccessRefusal::Revoked) => {
            Introspection::Inactive(InactiveToken { active: false })
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(answer))
}
