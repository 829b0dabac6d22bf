//! A tower layer for axum and other tower-based servers (feature `axum`).
//!
//! [`VerifyLayer`] wraps a service: a request with a valid, unrevoked
//! Bearer access token reaches it with a [`VerifiedUser`] in its extensions
//! (axum: `Extension<VerifiedUser>`); any other is answered by the layer
//! itself with keyward's `401`/`503` JSON error.
//!
//! With axum (not a dependency of this crate, hence not compiled here):
//!
//! ```ignore
//! use axum::{routing::get, Extension, Router};
//! use keyward_verify::{layer::VerifyLayer, VerifiedUser, Verifier};
//!
//! async fn me(Extension(user): Extension<VerifiedUser>) -> String {
//!     format!("hello {}", user.username)
//! }
//!
//! # async fn run(verifier: Verifier) {
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .layer(VerifyLayer::new(verifier))
//!     // Routes added after the layer are not protected.
//!     .route("/health", get(|| async { "ok" }));
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Request, Response, StatusCode};

use crate::claims::VerifiedUser;
use crate::error::{bearer_token, VerifyError};
use crate::verifier::Verifier;

/// Verifies every request's Bearer token before the inner service sees it.
#[derive(Debug, Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
}

impl VerifyLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> tower_layer::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service [`VerifyLayer`] makes.
#[derive(Debug, Clone)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
}

/// The JSON refusal, with any body type that can be made from a `String`
/// (axum's `Body`, `http_body_util::Full`, ...).
fn refuse<B: From<String>>(error: &VerifyError) -> Response<B> {
    let refusal = error.refusal();
    let mut response = Response::new(B::from(error.body()));
    *response.status_mut() =
        StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::UNAUTHORIZED);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(refusal.header.0, HeaderValue::from_static(refusal.header.1));
    response
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for VerifyService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            // Owned, so that the future holds no borrow of the request.
            let token = {
                let header = request.headers().get(header::AUTHORIZATION);
                bearer_token(header.map(HeaderValue::as_bytes)).map(str::to_owned)
            };
            let verified = match token {
                Ok(token) => verifier.verify_shared(&token).await,
                Err(e) => Err(e),
            };
            match verified {
                Ok(claims) => {
                    request.extensions_mut().insert(VerifiedUser(claims));
                    inner.call(request).await
                }
                Err(e) => Ok(refuse(&e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_keyward_s_json_with_its_header() {
        let response: Response<String> = refuse(&VerifyError::FeedStale);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["error"], "unavailable");
        let response: Response<String> = refuse(&VerifyError::Invalid);
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"keyward\", error=\"invalid_token\""
        );
    }
}
