//! The client side: a reply read whole, registered users and the requests
//! tests send for them, and the helpers for concurrent requests and polling.

use serde_json::{json, Value};

use super::app::TestApp;
use super::db::TestDb;
use super::tokens::TokenPair;

/// A response read whole: status, headers, body as text and JSON.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the contract's error shape and code, and returns the message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.json["error"], code, "body: {}", self.text);
        let message = self.json["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "an error needs a message: {}",
            self.text
        );
        assert!(
            self.header("content-type")
                .unwrap_or_default()
                .contains("json"),
            "errors are JSON"
        );
        message.to_string()
    }
}

impl Reply {
    /// Asserts `401 invalid_client` with the `Basic realm="keyward"` challenge.
    #[track_caller]
    pub fn assert_invalid_client(&self) {
        self.assert_error(401, "invalid_client");
        assert_eq!(
            self.header("www-authenticate"),
            Some(r#"Basic realm="keyward""#),
            "{}",
            self.text
        );
    }
}

impl Reply {
    /// The token pair of a successful sign-in or refresh (200 expected).
    #[track_caller]
    pub fn token_pair(&self) -> TokenPair {
        assert_eq!(self.status, 200, "a token pair expected: {}", self.text);
        TokenPair::from_json(self.json.clone())
    }
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

/// A user the tests registered: name and password.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password: String,
    pub name: Option<String>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Reply {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value, token: Option<&str>) -> Reply {
        let mut req = self.client.patch(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        read(req.send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.client.delete(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    /// Registers a fresh user (201 expected).
    pub async fn register(&self) -> User {
        let username = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let name = Some(format!("Test {username}"));
        let r = self
            .post_json(
                "/auth/register",
                &json!({"username": username, "password": password, "name": name}),
                None,
            )
            .await;
        assert_eq!(r.status, 201, "register: {}", r.text);
        User {
            id: r.json["id"].as_str().unwrap().to_string(),
            username,
            password,
            name,
        }
    }

    /// `POST /auth/login` with the user's credentials, whatever its answer
    /// (`.token_pair()` on it when the sign-in must succeed).
    pub async fn login(&self, user: &User) -> Reply {
        self.post_json(
            "/auth/login",
            &json!({"username": user.username, "password": user.password}),
            None,
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post_json(
            "/auth/refresh",
            &json!({ "refresh_token": refresh_token }),
            None,
        )
        .await
    }

    /// Makes a user an administrator directly in the database.
    pub fn make_admin(&self, db: &TestDb, user: &User) {
        db.exec(&format!(
            "UPDATE users SET admin = true WHERE id = '{}'",
            user.id
        ));
    }
}

/// Waits up to `limit` for `check` to hold, polling every 20 ms; returns how
/// long it took, or `None`.
pub async fn eventually<F, Fut>(
    limit: std::time::Duration,
    mut check: F,
) -> Option<std::time::Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// Registers a user, makes them an administrator and signs them in;
    /// returns the user and an access token.
    pub async fn admin(&self, db: &TestDb) -> (User, String) {
        let user = self.register().await;
        self.make_admin(db, &user);
        let pair = self.login(&user).await.token_pair();
        (user, pair.access_token)
    }

    /// `GET /api/me` with the access token of a token pair.
    pub async fn me(&self, pair: &TokenPair) -> Reply {
        self.get("/api/me", Some(&pair.access_token)).await
    }

    /// A form POST with a Bearer token.
    pub async fn post_form_with_token(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        token: &str,
    ) -> Reply {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let req = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        read(req.send().await.unwrap()).await
    }
}

/// A text field of a JSON body (a token pair's `access_token`, say).
pub fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no text field {key} in {value}"))
}

/// Runs the `n` requests `make` builds, released together by a barrier
/// once all of them are ready, and returns their replies in order.
pub async fn all_at_once<F, Fut>(n: usize, make: F) -> Vec<Reply>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let barrier = tokio::sync::Barrier::new(n);
    let barrier = &barrier;
    futures_util::future::join_all((0..n).map(|i| {
        let request = make(i);
        async move {
            barrier.wait().await;
            request.await
        }
    }))
    .await
}

/// How many replies have this status.
pub fn count_status(replies: &[Reply], status: u16) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}
