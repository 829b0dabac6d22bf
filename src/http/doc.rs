//! The parts of the OpenAPI document no single handler owns: the error
//! body every failure has, the responses many routes share, the security
//! schemes, and the document's frame. The paths come from the route table
//! (`routes::document`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// Every error's body (API.md section 1), as `ApiError`
/// writes it; a unit test below keeps the two in step.
#[derive(ToSchema)]
#[allow(dead_code)] // Only described, never built: `ApiError` writes the body.
pub(crate) struct ErrorBody {
    /// The stable error code, e.g. `invalid_token`.
    error: String,
    /// A sentence for a person; never a cause.
    message: String,
}

/// What every route that reads a body may answer besides its own outcomes.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only described, never built.
pub(crate) enum BodyErrors {
    /// payload_too_large: the body is over 16 KiB
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// unsupported_media_type: the body is neither JSON nor a form
    #[response(status = 415)]
    Unsupported(ErrorBody),
    /// unavailable: the database cannot be reached in time, or (login,
    /// register, password change) too many password checks already wait
    /// for bcrypt (Retry-After)
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// What every route behind a Bearer access token may answer besides its own
/// outcomes.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only described, never built.
pub(crate) enum AccessErrors {
    /// invalid_token, token_expired or session_revoked (WWW-Authenticate)
    #[response(status = 401)]
    Unauthorized(ErrorBody),
}

/// What every `/admin/*` route may answer besides its own outcomes: the
/// administrator flag and the ban are read from the database at each call.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only described, never built.
pub(crate) enum AdminErrors {
    /// invalid_token, token_expired or session_revoked (WWW-Authenticate)
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// forbidden: the caller is not an administrator, or is banned
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// unavailable: the database cannot be reached in time (Retry-After)
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The document's frame: its title and the error schema; the route table
/// adds the paths (`routes::document`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyward",
        description = "A small, fast authentication server: JWT access tokens and rotating \
                       refresh sessions. Errors are always {\"error\": code, \"message\": sentence}."
    ),
    components(schemas(ErrorBody))
)]
pub(crate) struct ApiDoc;

/// The `bearer` scheme the access-token routes name.
pub(crate) struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The `service` scheme introspection and the revocation feed name: a
/// service's `client_id:client_secret` by HTTP Basic (or, in a POST body,
/// as form fields, which OpenAPI cannot say as a scheme).
pub(crate) struct ServiceScheme;

impl Modify for ServiceScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "service",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// `request_body(content((Option<T> = …)))` is how a handler says its body
/// may be left out (logout, refresh, ban): utoipa marks it not required, as
/// meant, but also writes its schema as "T or JSON `null`", and keyward does
/// not take a `null` body. This keeps the first and drops the second.
pub(crate) struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{Schema, Type};
        use utoipa::openapi::{RefOr, Required};
        let operations = openapi.paths.paths.values_mut().flat_map(|item| {
            [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
        });
        for op in operations {
            let Some(RefOr::T(body)) = op.request_body.as_mut() else {
                continue;
            };
            if body.required == Some(Required::True) {
                continue;
            }
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else {
                    continue;
                };
                let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                    continue;
                };
                let not_null: Vec<_> = one_of
                    .items
                    .iter()
                    .filter(|item| {
                        !matches!(item, RefOr::T(Schema::Object(o))
                            if o.schema_type == Type::Null.into())
                    })
                    .cloned()
                    .collect();
                if let [only] = not_null.as_slice() {
                    content.schema = Some(only.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use actix_web::ResponseError;

    #[test]
    fn the_error_schema_matches_what_api_error_writes() {
        let body = crate::error::ApiError::not_found()
            .error_response()
            .into_body()
            .try_into_bytes()
            .unwrap();
        let written: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut written: Vec<_> = written.as_object().unwrap().keys().cloned().collect();
        written.sort();
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schema = &doc["components"]["schemas"]["ErrorBody"];
        let mut described: Vec<_> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        described.sort();
        assert_eq!(written, described);
        assert_eq!(schema["required"], serde_json::json!(["error", "message"]));
    }
}
