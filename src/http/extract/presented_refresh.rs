//! [`PresentedRefresh`]: the refresh token a request presents, from its
//! body or, in browser mode, the `keyward_refresh` cookie.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use utoipa::ToSchema;

use super::access::state;
use super::Body;
use crate::error::{ApiError, ErrorCode};
use crate::http::browser;

/// The body of a refresh or a logout.
#[derive(Deserialize, ToSchema)]
pub(crate) struct RefreshRequest {
    /// The refresh token; in browser mode the `keyward_refresh` cookie
    /// stands in for it.
    refresh_token: Option<String>,
}

/// The body's `refresh_token`, else (browser mode only: a cross-site form
/// cannot set the header) the cookie. A browser-mode request, which the
/// cookie authenticates, must come from an allowed origin.
pub(crate) struct PresentedRefresh(pub Option<String>);

impl PresentedRefresh {
    /// The token, or `401 invalid_token` without one.
    pub(crate) fn required(self) -> Result<String, ApiError> {
        self.0
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "refresh_token is required"))
    }
}

impl FromRequest for PresentedRefresh {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = Body::<RefreshRequest>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let body = body.await?;
            if browser::is_browser(&req) {
                browser::check_origin(&req, &state(&req)?.settings)?;
            }
            let token = body
                .0
                .refresh_token
                .filter(|t| !t.is_empty())
                .or_else(|| browser::refresh_cookie(&req));
            Ok(Self(token))
        })
    }
}
