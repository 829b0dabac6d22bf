//! The route table: every route keyward serves, one line each, registered
//! from its handler's `#[utoipa::path]`, so that `/openapi.json` lists
//! exactly what actix serves.

use actix_web::web;
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use super::doc::{ApiDoc, BearerScheme, OptionalBodies, ServiceScheme};
use super::handlers::{
    account, admin, auth, ephemeral, feed, introspection, policy, register, service, web_app,
};
use super::table::{self, route, Route};

/// API.md sections 3 to 7 and the browser app. A literal path comes before
/// a `{id}` sibling (`/admin/sessions/revoke` before `/admin/sessions/{id}`).
const ROUTES: &[Route] = &[
    // A request is matched against the paths in this order, one after
    // another: the routes other services and apps call all the time come
    // first (the introspection route was 30th, and matching was then a
    // tenth of its cost).
    route!(auth::me),
    route!(introspection::introspect),
    route!(auth::refresh_pair, alias = "/token"),
    route!(service::jwks),
    route!(feed::revocations),
    route!(auth::restricted),
    route!(service::health),
    route!(service::ready),
    route!(register::register),
    route!(auth::login, alias = "/login"),
    route!(auth::logout),
    route!(service::metrics),
    route!(service::openapi_json),
    route!(account::list_sessions),
    route!(account::revoke_own_session),
    route!(account::rename_session),
    route!(account::change_password),
    route!(policy::revoke_all_sessions),
    route!(policy::stats),
    route!(admin::users::list_users),
    route!(admin::users::get_user),
    route!(admin::users::delete_user),
    route!(admin::users::ban_user),
    route!(admin::users::unban_user),
    route!(admin::sessions::user_sessions),
    route!(admin::sessions::revoke_user_sessions),
    route!(admin::sessions::revoke_any_session),
    route!(admin::events::list_events),
    route!(introspection::discovery),
    route!(feed::revocations_stream),
    route!(web_app::index),
    route!(web_app::app_js),
    route!(web_app::overview_js),
    route!(web_app::session_name_js),
    route!(web_app::style_css),
    route!(web_app::keyward_js),
    route!(web_app::keyward_d_ts),
];

/// API.md section 8: served by `serve --ephemeral` only.
const EPHEMERAL_ROUTES: &[Route] = &[
    route!(ephemeral::advance_clock),
    route!(ephemeral::create_ephemeral_user),
];

/// Registers every route (the ephemeral ones too in that mode); unknown
/// routes and methods get JSON errors too (see `table`).
pub(crate) fn configure(cfg: &mut web::ServiceConfig, ephemeral: bool) {
    table::register(cfg, ROUTES);
    if ephemeral {
        table::register(cfg, EPHEMERAL_ROUTES);
    }
}

/// The OpenAPI document of the routes [`configure`] registers.
pub(crate) fn document(ephemeral: bool) -> Document {
    let mut doc = ApiDoc::openapi();
    table::describe(&mut doc, ROUTES);
    if ephemeral {
        table::describe(&mut doc, EPHEMERAL_ROUTES);
    }
    for modifier in [
        &BearerScheme as &dyn Modify,
        &ServiceScheme,
        &OptionalBodies,
    ] {
        modifier.modify(&mut doc);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_get_their_own_operation_ids() {
        let doc = serde_json::to_value(document(false)).unwrap();
        let id = |path: &str| doc["paths"][path]["post"]["operationId"].clone();
        assert_eq!(id("/auth/login"), "login");
        assert_eq!(id("/login"), "login_seed_alias");
        assert_eq!(id("/token"), "refresh_pair_seed_alias");
    }

    #[test]
    fn the_ephemeral_routes_are_documented_in_that_mode_only() {
        let plain = serde_json::to_value(document(false)).unwrap();
        let ephemeral = serde_json::to_value(document(true)).unwrap();
        assert!(plain["paths"]["/ephemeral/clock"].is_null());
        assert!(ephemeral["paths"]["/ephemeral/clock"]["post"].is_object());
    }
}
