//! `Body<T>`: a request body given as JSON or as a form, both giving the same
//! result, at most 16 KiB. Every failure is the contract's JSON error.

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// The largest body keyward reads.
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// A request body read as `T` (see the module).
pub(crate) struct Body<T>(pub T);

#[derive(Clone, Copy)]
enum Kind {
    Json,
    Form,
    Other,
}

fn kind_of(req: &HttpRequest) -> Kind {
    // Without a Content-Type only an empty body is read (see `parse`).
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return Kind::Other;
    };
    let Ok(value) = value.to_str() else {
        return Kind::Other;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Kind::Json,
        e if e.starts_with("application/") && e.ends_with("+json") => Kind::Json,
        "application/x-www-form-urlencoded" => Kind::Form,
        _ => Kind::Other,
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        "The request body is larger than 16 KiB.",
    )
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let kind = kind_of(req);
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|len| len > MAX_BODY as u64) {
                return Err(too_large());
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| {
                    ApiError::invalid_request("The request body could not be read.")
                })?;
                if bytes.len() + chunk.len() > MAX_BODY {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            parse(kind, &bytes).map(Body)
        })
    }
}

fn parse<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T, ApiError> {
    // A bodiless POST (logout, say) needs no Content-Type: it has no fields.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return serde_urlencoded::from_bytes(b"")
            .map_err(|e| ApiError::invalid_request(format!("The request body is invalid: {e}")));
    }
    match kind {
        Kind::Json => {
            // serde would read a struct from an array of its fields too.
            if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
                return Err(ApiError::invalid_request(
                    "The request body must be a JSON object.",
                ));
            }
            let mut de = serde_json::Deserializer::from_slice(bytes);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." || inner.is_syntax() || inner.is_eof() {
                    ApiError::invalid_request(format!(
                        "The request body is not valid JSON: {inner}"
                    ))
                } else {
                    ApiError::invalid_request(format!("{path} is invalid: {inner}"))
                }
            })
        }
        Kind::Form => serde_urlencoded::from_bytes(bytes)
            .map_err(|e| ApiError::invalid_request(format!("The form body is invalid: {e}"))),
        Kind::Other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Send the body as application/json or application/x-www-form-urlencoded.",
        )),
    }
}

/// A required text field of a request body: present and not blank.
pub(crate) fn required(value: Option<String>, field: &'static str) -> Result<String, ApiError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::invalid_request(format!("{field} is required"))),
    }
}

/// An optional free-text field (a display name, a ban reason): surrounding
/// blanks trimmed, blank meaning absent, at most `max` characters, and no
/// control characters.
pub(crate) fn optional_text(
    value: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let Some(text) = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    if text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(ApiError::invalid_request(format!(
            "{field} must be at most {max} characters, without control characters"
        )));
    }
    Ok(Some(text))
}
