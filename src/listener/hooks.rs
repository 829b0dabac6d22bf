//! What else the listener keeps current besides revocations and keys: a
//! [`ListenHook`] per cache, and the service registry's.

use std::time::Duration;

use diesel::pg::PgConnection;

use crate::db::services::SERVICES_CHANNEL;
use crate::services::service_registry::ServiceRegistry;

/// The service registry is reloaded on every NOTIFY on its channel, and this
/// often besides, in case a notification was lost.
const SERVICES_RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Something else the listener keeps current from the database: it
/// `LISTEN`s on `channel`, and calls `reload` after every (re)connect, at
/// every notification on that channel, and every `safety_net` besides
/// (a reload that fails is retried at the next of these).
pub(crate) trait ListenHook: Send + Sync {
    fn channel(&self) -> &'static str;
    fn safety_net(&self) -> Duration;
    /// `false` when it could not (what it keeps stays as it was).
    fn reload(&self, conn: &mut PgConnection) -> bool;
}

/// The service registry reloads on its channel (a service created or
/// deleted), and every two seconds in case a notification was lost.
impl ListenHook for ServiceRegistry {
    fn channel(&self) -> &'static str {
        SERVICES_CHANNEL
    }

    fn safety_net(&self) -> Duration {
        SERVICES_RELOAD_EVERY
    }

    fn reload(&self, conn: &mut PgConnection) -> bool {
        match ServiceRegistry::reload(self, conn) {
            Ok(_) => true,
            Err(e) => {
                log::error!("cannot reload the service registry: {e}");
                false
            }
        }
    }
}
