//! Services (resource servers): their credentials and the introspection
//! requests they send.

use super::app::TestApp;
use super::client::{read, Reply};

/// A service's credentials, as `keyward services create` prints them.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
}

impl Service {
    /// The `Authorization: Basic` value of these credentials.
    pub fn basic(&self) -> String {
        use base64::Engine;
        let pair = format!("{}:{}", self.client_id, self.client_secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

impl TestApp {
    /// Creates a service in the database (which announces it to every
    /// instance) and reloads this instance's registry at once.
    pub fn create_service(&self) -> Service {
        let name = format!("svc{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut conn = self.state.pool.get().unwrap();
        let (row, credentials) =
            keyward::services::service_registry::create(&mut conn, &name, self.clock.now())
                .unwrap();
        self.state.services.reload(&mut conn).unwrap();
        Service {
            name: row.name,
            client_id: credentials.client_id,
            client_secret: credentials.client_secret,
        }
    }

    /// `POST /oauth/introspect` with the service's credentials by HTTP Basic.
    pub async fn introspect(&self, service: &Service, token: &str) -> Reply {
        let body = serde_urlencoded::to_string([("token", token)]).unwrap();
        let req = self
            .client
            .post(self.url("/oauth/introspect"))
            .header("authorization", service.basic())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        read(req.send().await.unwrap()).await
    }
}
