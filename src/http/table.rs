//! How a route is registered once: a [`Route`] is a handler together with
//! the OpenAPI path its `#[utoipa::path]` attribute describes, so the path
//! and methods actix serves and the ones `/openapi.json` lists are the same
//! values (crates.io does this with `utoipa_axum::routes!`; for actix,
//! `utoipa-actix-web` would make every handler a resource of its own, which
//! loses the `405` with `Allow` a shared resource gives).

use std::future::ready;

use actix_web::guard::{Guard, GuardContext};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, Resource, ResponseError};
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::{OpenApi, RefOr, Schema};

use super::metrics::RouteSeries;
use crate::error::ApiError;

/// One route: where it is served and how it is described.
pub(crate) struct Route {
    pub(crate) path: fn() -> String,
    pub(crate) methods: fn() -> Vec<HttpMethod>,
    pub(crate) operation: fn() -> Operation,
    pub(crate) schemas: fn(&mut Vec<(String, RefOr<Schema>)>),
    pub(crate) handler: fn() -> actix_web::Route,
    /// A second path serving the same handler (the tutorial's `/login` and
    /// `/token`), documented as a copy with an operation id of its own.
    pub(crate) alias: Option<&'static str>,
}

/// `route!(handlers::auth::login)`: the handler and its `#[utoipa::path]`.
/// `route!(handlers::auth::login, alias = "/login")` serves it at a second
/// path too.
macro_rules! route {
    ($($path:ident)::+ $(, alias = $alias:literal)?) => {
        $crate::http::table::route!(@split [] $($path)+ ; $($alias)?)
    };
    // Splits the path into its modules and the handler's name.
    (@split [$($module:ident)*] $next:ident $($rest:ident)+ ; $($alias:literal)?) => {
        $crate::http::table::route!(@split [$($module)* $next] $($rest)+ ; $($alias)?)
    };
    (@split [$($module:ident)*] $handler:ident ; $($alias:literal)?) => {
        pastey::paste! {
            $crate::http::table::Route {
                path: <$($module::)* [<__path_ $handler>] as utoipa::Path>::path,
                methods: <$($module::)* [<__path_ $handler>] as utoipa::Path>::methods,
                operation: <$($module::)* [<__path_ $handler>] as utoipa::Path>::operation,
                schemas: <$($module::)* [<__path_ $handler>] as utoipa::__dev::SchemaReferences>::schemas,
                handler: || actix_web::web::to($($module::)* $handler),
                alias: $crate::http::table::alias(&[$($alias)?]),
            }
        }
    };
}
pub(crate) use route;

/// The macro's optional alias (`[]` or `["/login"]`) as an `Option`.
pub(crate) const fn alias(given: &[&'static str]) -> Option<&'static str> {
    match given {
        [path] => Some(*path),
        _ => None,
    }
}

impl Route {
    fn paths(&self) -> impl Iterator<Item = String> {
        std::iter::once((self.path)()).chain(self.alias.map(str::to_string))
    }
}

/// Registers `routes`, one actix resource per path holding every method
/// served there, so that another method gets `405` with `Allow`. Paths are
/// registered in the table's order: actix takes the first resource whose
/// pattern matches, so a literal path must come before a `{id}` sibling.
pub(crate) fn register(cfg: &mut web::ServiceConfig, routes: &[Route]) {
    let mut by_path: Vec<(String, Vec<&Route>)> = Vec::new();
    for route in routes {
        for path in route.paths() {
            match by_path.iter_mut().find(|(p, _)| *p == path) {
                Some((_, same)) => same.push(route),
                None => by_path.push((path, vec![route])),
            }
        }
    }
    for (path, routes) in by_path {
        let methods: Vec<(Method, &Route)> = routes
            .iter()
            .flat_map(|route| {
                (route.methods)()
                    .into_iter()
                    .map(move |m| (actix_method(&m), *route))
            })
            .collect();
        let allow = methods
            .iter()
            .map(|(method, _)| method.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        // Method names are tokens, always valid in a header value.
        let allow = HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static(""));
        let mut resource = resource(&path, allow);
        for (method, route) in methods {
            resource = resource.route((route.handler)().guard(IsMethod(method)));
        }
        cfg.service(resource);
    }
}

fn actix_method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// Adds `routes`' paths and the schemas they name to `doc`.
pub(crate) fn describe(doc: &mut OpenApi, routes: &[Route]) {
    let mut schemas = Vec::new();
    for route in routes {
        let mut operation = (route.operation)();
        doc.paths
            .add_path_operation((route.path)(), (route.methods)(), operation.clone());
        if let Some(alias) = route.alias {
            operation.operation_id = operation.operation_id.map(|id| format!("{id}_seed_alias"));
            doc.paths
                .add_path_operation(alias, (route.methods)(), operation);
        }
        (route.schemas)(&mut schemas);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.extend(schemas);
}

/// A resource whose other methods answer `405` in the contract's shape,
/// with the `Allow` header RFC 9110 requires: `allow`, the methods its
/// routes serve.
fn resource(path: &str, allow: HeaderValue) -> Resource {
    web::resource(path)
        .app_data(RouteSeries::new(path))
        .default_service(web::to(move || {
            let mut response = ApiError::method_not_allowed().error_response();
            response.headers_mut().insert(header::ALLOW, allow.clone());
            ready(response)
        }))
}

/// A route's method, checked without the bookkeeping of actix's own method
/// guard, which allocates the list of methods it saw in every request's
/// extensions (for the `Allow` of its default `405`): the table knows the
/// methods of each path, so [`resource`] states them once.
struct IsMethod(Method);

impl Guard for IsMethod {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.head().method == self.0
    }
}
