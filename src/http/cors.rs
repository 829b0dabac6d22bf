//! CORS (API.md section 4): only the origins of `cors.allowed_origins` get
//! an answer, the exact origin echoed with credentials allowed, never `*`.
//! `actix-cors` does the work; this wrapper turns its plain-text refusals
//! (a preflight from another origin) into the contract's JSON, and keeps
//! the credentials header off responses that grant no origin.

use std::rc::Rc;
use std::sync::Arc;

use actix_cors::{Cors, CorsError};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{Error, ResponseError};
use futures_util::future::{Either, FutureExt, LocalBoxFuture};

use super::browser::{self, CLIENT_HEADER};
use crate::config::Settings;
use crate::error::{ApiError, ErrorCode};

/// How long a browser may cache a granted preflight.
const PREFLIGHT_MAX_AGE_SECONDS: usize = 600;

/// The CORS policy for `cors.allowed_origins`; wrap it inside the middleware
/// that adds the common headers, so its refusals carry them too.
pub(crate) struct CorsPolicy {
    settings: Arc<Settings>,
}

impl CorsPolicy {
    pub(crate) fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }

    fn cors(&self) -> Cors {
        let settings = self.settings.clone();
        // A function rather than `allowed_origin`: the same comparison as the
        // origin check of cookie mode, and a malformed entry in the settings
        // can only fail to match, never stop the workers from starting.
        Cors::default()
            .allowed_origin_fn(move |origin, _| browser::is_listed_origin(origin, &settings))
            .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allowed_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::HeaderName::from_static(CLIENT_HEADER),
            ])
            .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
            .supports_credentials()
            .max_age(PREFLIGHT_MAX_AGE_SECONDS)
            // Same-origin POSTs carry an `Origin` too: they must pass through
            // (merely without CORS headers), not be refused here.
            .block_on_origin_mismatch(false)
    }
}

impl<S, B> Transform<S, ServiceRequest> for CorsPolicy
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<EitherBody<B>>>;
    type Error = Error;
    type InitError = ();
    type Transform =
        CorsPolicyMiddleware<S, <Cors as Transform<Shared<S>, ServiceRequest>>::Transform>;
    type Future = LocalBoxFuture<'static, Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let plain = Rc::new(service);
        let inner = self.cors().new_transform(Shared(Rc::clone(&plain)));
        Box::pin(async move {
            Ok(CorsPolicyMiddleware {
                plain,
                cors: Rc::new(inner.await?),
            })
        })
    }
}

/// The app's service, shared by the CORS middleware and the way around it.
pub(crate) struct Shared<S>(Rc<S>);

impl<S: Service<ServiceRequest>> Service<ServiceRequest> for Shared<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        self.0.call(req)
    }
}

/// `plain` is the app; `cors` is `actix-cors` around it.
pub(crate) struct CorsPolicyMiddleware<S, C> {
    plain: Rc<S>,
    cors: Rc<C>,
}

type Answer<B> = Result<ServiceResponse<EitherBody<EitherBody<B>>>, Error>;

/// A request with no `Origin` that is not a preflight: `actix-cors` would
/// only add its `Vary` (the other headers it adds are taken off again
/// below), so it is done here without it. Most requests are these (other
/// services, apps outside a browser), and the detour cost an `/api/me` 6 %
/// of its instructions (callgrind: 33,316 a request before, 31,456 after).
type WithoutOrigin<F, B> =
    futures_util::future::Map<F, fn(Result<ServiceResponse<B>, Error>) -> Answer<B>>;

impl<S, C, B> Service<ServiceRequest> for CorsPolicyMiddleware<S, C>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    S::Future: 'static,
    C: Service<ServiceRequest, Response = ServiceResponse<EitherBody<B>>, Error = Error> + 'static,
    C::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<EitherBody<B>>>;
    type Error = Error;
    type Future = Either<WithoutOrigin<S::Future, B>, LocalBoxFuture<'static, Answer<B>>>;

    actix_web::dev::forward_ready!(cors);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if !req.headers().contains_key(header::ORIGIN) && req.method() != Method::OPTIONS {
            let vary: fn(Result<ServiceResponse<B>, Error>) -> Answer<B> = |res| {
                res.map(|mut res| {
                    add_vary(res.headers_mut());
                    res.map_into_left_body().map_into_left_body()
                })
            };
            return Either::Left(self.plain.call(req).map(vary));
        }
        let fut = self.cors.call(req);
        Either::Right(Box::pin(async move {
            let mut res = fut.await?;
            let refusal = res
                .response()
                .error()
                .and_then(|e| e.as_error::<CorsError>())
                .map(json_refusal);
            Ok(match refusal {
                None => {
                    // `actix-cors` adds these to every response; without an
                    // allowed origin they grant nothing and only confuse.
                    let headers = res.headers_mut();
                    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
                        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
                        headers.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
                    }
                    res.map_into_left_body()
                }
                Some(api_error) => {
                    let (req, _) = res.into_parts();
                    let mut response = api_error.error_response();
                    response
                        .headers_mut()
                        .insert(header::VARY, HeaderValue::from_static("Origin"));
                    ServiceResponse::new(req, response).map_into_right_body()
                }
            })
        }))
    }
}

/// The `Vary` `actix-cors` gives every response (its `add_vary_header`,
/// which it does not export): the answer depends on these request headers.
const CORS_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

fn add_vary(headers: &mut header::HeaderMap) {
    let value = match headers.get(header::VARY) {
        None => return headers.append(header::VARY, HeaderValue::from_static(CORS_VARY)),
        Some(before) => {
            let mut joined = before.as_bytes().to_vec();
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(CORS_VARY.as_bytes());
            match HeaderValue::from_bytes(&joined) {
                Ok(value) => value,
                Err(_) => return,
            }
        }
    };
    headers.insert(header::VARY, value);
}

/// The contract's error for a refused CORS request: an origin, method or
/// header outside the policy is `403 forbidden`; a malformed preflight `400`.
fn json_refusal(error: &CorsError) -> ApiError {
    match error {
        CorsError::OriginNotAllowed => ApiError::new(
            ErrorCode::Forbidden,
            "Requests from this origin are not allowed.",
        ),
        CorsError::MethodNotAllowed | CorsError::HeadersNotAllowed => ApiError::new(
            ErrorCode::Forbidden,
            "That cross-origin request is not allowed.",
        ),
        _ => ApiError::invalid_request(format!("The CORS preflight is malformed: {error}")),
    }
}
