//! Who sent a request and what it names in its path: [`Client`] (address,
//! user agent, browser mode) and [`IdInPath`].

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use uuid::Uuid;

use super::access::state;
use crate::error::ApiError;
use crate::http::{browser, client_addr};

/// The longest user agent kept, in characters.
const MAX_USER_AGENT_CHARS: usize = 512;

/// The request's sender as sessions and events record it.
pub(crate) struct Client {
    /// The client's address (see [`client_addr`]), never the header's text.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// `X-Keyward-Client: spa`: the refresh token travels in the cookie.
    pub browser: bool,
}

impl FromRequest for Client {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(state(req).map(|state| {
            Self {
                ip: client_addr::client_ip(req, &state.proxies),
                user_agent: req
                    .headers()
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.chars().take(MAX_USER_AGENT_CHARS).collect()),
                browser: browser::is_browser(req),
            }
        }))
    }
}

/// The `{id}` of the route's path: anything but a UUID names nothing here,
/// so it is `404 not_found`, like an id that names no row.
pub(crate) struct IdInPath(pub Uuid);

impl FromRequest for IdInPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req
            .match_info()
            .get("id")
            .and_then(|raw| Uuid::parse_str(raw).ok());
        ready(id.map(Self).ok_or_else(ApiError::not_found))
    }
}
