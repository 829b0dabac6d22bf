//! `ApiError`: the one place a failure becomes an HTTP status and the JSON
//! body `{"error": code, "message": sentence}`. Bodies never carry causes;
//! the log gets them.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The stable error codes of the contract (API.md section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    InvalidRequest,
    InvalidCredentials,
    InvalidToken,
    TokenExpired,
    TokenReused,
    SessionRevoked,
    UserBanned,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    InvalidClient,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenReused => "token_reused",
            Self::SessionRevoked => "session_revoked",
            Self::UserBanned => "user_banned",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::InvalidClient => "invalid_client",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::InvalidCredentials
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::TokenReused
            | Self::SessionRevoked
            | Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::UserBanned | Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// How a `401` on a Bearer-protected route challenges the client (RFC 6750).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Challenge {
    None,
    /// No token was presented.
    Bearer,
    /// A token was presented and refused.
    BearerInvalidToken,
    /// A service's credentials were missing or wrong (RFC 6749 2.3.1).
    Basic,
}

#[derive(Debug)]
pub(crate) struct ApiError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub challenge: Challenge,
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            challenge: Challenge::None,
            retry_after: None,
        }
    }

    pub(crate) fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "There is nothing here.")
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "This route does not accept that method.",
        )
    }

    pub(crate) fn unavailable() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "The database cannot be reached right now; try again shortly.",
        )
        .with_retry_after(2)
    }

    /// `503 unavailable`: every place in the queue for bcrypt is taken
    /// (`auth.max_pending_hashes`).
    pub(crate) fn busy_hashing() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "Too many password checks are waiting; try again shortly.",
        )
        .with_retry_after(1)
    }

    /// Logs the cause and answers `500 internal` without it.
    pub(crate) fn internal(cause: impl std::fmt::Display) -> Self {
        log::error!("internal error: {cause}");
        Self::new(ErrorCode::Internal, "Something went wrong on our side.")
    }

    pub(crate) fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    pub(crate) fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self.challenge {
            Challenge::None => {}
            Challenge::Bearer => {
                response.insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="keyward""#));
            }
            Challenge::BearerInvalidToken => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="keyward", error="invalid_token""#,
                ));
            }
            Challenge::Basic => {
                response.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="keyward""#));
            }
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        response.json(ErrorBody {
            error: self.code.as_str(),
            message: &self.message,
        })
    }
}

impl From<crate::domain::tokens::TokenError> for ApiError {
    fn from(e: crate::domain::tokens::TokenError) -> Self {
        use crate::domain::tokens::TokenError;
        match e {
            TokenError::Invalid => Self::new(ErrorCode::InvalidToken, "The token is not valid."),
            TokenError::Expired => Self::new(ErrorCode::TokenExpired, "The token has expired."),
        }
    }
}

impl From<crate::db::StoreError> for ApiError {
    fn from(e: crate::db::StoreError) -> Self {
        match e {
            crate::db::StoreError::Unavailable(cause) => {
                log::warn!("database unavailable: {cause}");
                Self::unavailable()
            }
            crate::db::StoreError::Query(cause) => Self::internal(cause),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        crate::db::StoreError::from(e).into()
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        crate::db::StoreError::from(e).into()
    }
}

impl From<crate::services::Unexpected> for ApiError {
    fn from(e: crate::services::Unexpected) -> Self {
        match e {
            crate::services::Unexpected::Store(store) => store.into(),
            other => Self::internal(other),
        }
    }
}

impl From<crate::services::accounts::RegisterError> for ApiError {
    fn from(e: crate::services::accounts::RegisterError) -> Self {
        use crate::services::accounts::RegisterError;
        match e {
            RegisterError::Taken => Self::new(ErrorCode::Conflict, "That username is taken."),
            RegisterError::Unexpected(u) => u.into(),
        }
    }
}

impl From<crate::services::accounts::LoginError> for ApiError {
    fn from(e: crate::services::accounts::LoginError) -> Self {
        use crate::services::accounts::LoginError;
        match e {
            LoginError::InvalidCredentials => Self::new(
                ErrorCode::InvalidCredentials,
                "The username or password is wrong.",
            ),
            LoginError::Banned => Self::new(ErrorCode::UserBanned, "This account is banned."),
            LoginError::LockedOut { retry_after } => Self::new(
                ErrorCode::RateLimited,
                "Too many failed sign-ins for this username; try again later.",
            )
            .with_retry_after(retry_after.max(1) as u64),
            LoginError::Unexpected(u) => u.into(),
        }
    }
}

impl From<crate::services::refresh::RefreshError> for ApiError {
    fn from(e: crate::services::refresh::RefreshError) -> Self {
        use crate::services::refresh::RefreshError;
        match e {
            RefreshError::Token(t) => t.into(),
            RefreshError::Revoked => Self::new(
                ErrorCode::SessionRevoked,
                "This session has ended or was revoked; sign in again.",
            ),
            RefreshError::Reused => Self::new(
                ErrorCode::TokenReused,
                "This refresh token was already used; the session is now revoked.",
            ),
            RefreshError::Banned => Self::new(ErrorCode::UserBanned, "This account is banned."),
            RefreshError::Unexpected(u) => u.into(),
        }
    }
}

impl From<crate::services::admin::AdminError> for ApiError {
    fn from(e: crate::services::admin::AdminError) -> Self {
        use crate::services::admin::AdminError;
        match e {
            AdminError::NotFound => Self::not_found(),
            AdminError::OwnAccount => Self::new(
                ErrorCode::Conflict,
                "An administrator cannot ban or delete their own account.",
            ),
            AdminError::UnknownCursor => {
                Self::invalid_request("after must be the id of an existing user")
            }
            AdminError::Unexpected(u) => u.into(),
        }
    }
}

impl From<crate::services::self_service::SelfServiceError> for ApiError {
    fn from(e: crate::services::self_service::SelfServiceError) -> Self {
        use crate::services::self_service::SelfServiceError;
        match e {
            SelfServiceError::NotFound => Self::not_found(),
            // Not a sign-out trigger for the browser app, unlike the token
            // errors: the user just mistyped.
            SelfServiceError::WrongPassword => Self::new(
                ErrorCode::InvalidCredentials,
                "The current password is wrong.",
            ),
            SelfServiceError::Banned => Self::new(ErrorCode::UserBanned, "This account is banned."),
            SelfServiceError::LockedOut { retry_after } => Self::new(
                ErrorCode::RateLimited,
                "Too many wrong passwords for this username; try again later.",
            )
            .with_retry_after(retry_after.max(1) as u64),
            SelfServiceError::Revoked => Self::new(
                ErrorCode::SessionRevoked,
                "This session has been revoked; sign in again.",
            )
            .with_challenge(Challenge::BearerInvalidToken),
            SelfServiceError::Unexpected(u) => u.into(),
        }
    }
}
