//! What every response gets on its way out, in one middleware: its count
//! and time in the metrics (by the route pattern that answered it), and the
//! security headers. One layer rather than `from_fn(track)` plus
//! `DefaultHeaders`: each layer costs a future of its own and a move of the
//! response, and `from_fn` boxes the rest of the chain (150 instructions of
//! an `/api/me` fewer, counted with callgrind).

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::Method;
use pin_project_lite::pin_project;

use super::metrics::{Metrics, RouteSeries};

/// Added to every response that does not set them itself.
static SECURITY_HEADERS: [(HeaderName, HeaderValue); 2] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
];

/// The middleware: `App::wrap(Edge::new(metrics))`.
pub(crate) struct Edge {
    metrics: Arc<Metrics>,
}

impl Edge {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Edge
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = EdgeService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(EdgeService {
            service,
            metrics: Arc::clone(&self.metrics),
        }))
    }
}

pub(crate) struct EdgeService<S> {
    service: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<ServiceRequest> for EdgeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = EdgeFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let method = req.method().clone();
        EdgeFuture {
            inner: self.service.call(req),
            metrics: Arc::clone(&self.metrics),
            method,
            started: Instant::now(),
        }
    }
}

pin_project! {
    pub(crate) struct EdgeFuture<F> {
        #[pin]
        inner: F,
        metrics: Arc<Metrics>,
        method: Method,
        started: Instant,
    }
}

impl<F, B> Future for EdgeFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = match this.inner.poll(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => return Poll::Pending,
        };
        let elapsed = this.started.elapsed();
        match &mut result {
            Ok(response) => {
                // The resource that answered left its pattern in the
                // request's app data; unknown paths (the default service)
                // share one label.
                let status = response.status();
                match response.request().app_data::<RouteSeries>() {
                    Some(route) => this
                        .metrics
                        .observe_route(route, this.method, status, elapsed),
                    None => this
                        .metrics
                        .observe_request("unmatched", this.method, status, elapsed),
                }
                // `append` where absent: `insert` also looks for values to
                // drop (70 instructions each, callgrind).
                let headers = response.headers_mut();
                for (name, value) in SECURITY_HEADERS.iter() {
                    if !headers.contains_key(name) {
                        headers.append(name.clone(), value.clone());
                    }
                }
            }
            // An error no handler turned into a response (none does today).
            Err(e) => {
                let status = e.as_response_error().status_code();
                this.metrics
                    .observe_request("unmatched", this.method, status, elapsed);
            }
        }
        Poll::Ready(result)
    }
}
