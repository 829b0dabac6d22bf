//! The scenarios the clients run against the server (health, /api/me,
//! refresh chains, logins, the mix), what each client measures (a
//! [`Tally`]), and the seeding of users and sessions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{
    find, get, login_request, post_json, refresh_request, Conn, PairBody, Session, User,
};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Scenario {
    Health,
    Me,
    Refresh,
    RawUpdate,
    Login,
    Mix,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 6] = [
        Scenario::Health,
        Scenario::Me,
        Scenario::Refresh,
        Scenario::RawUpdate,
        Scenario::Login,
        Scenario::Mix,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Health => "GET /health",
            Scenario::Me => "GET /api/me",
            Scenario::Refresh => "refresh chain",
            Scenario::RawUpdate => "raw CAS UPDATE (db)",
            Scenario::Login => "login",
            Scenario::Mix => "mix 90/9/1",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::Me => "me",
            Scenario::Refresh => "refresh",
            Scenario::RawUpdate => "raw_update",
            Scenario::Login => "login",
            Scenario::Mix => "mix",
        }
    }

    pub(crate) fn color(self) -> &'static str {
        match self {
            Scenario::Health => "#7f7f7f",
            Scenario::Me => "#1f77b4",
            Scenario::Refresh => "#d62728",
            Scenario::RawUpdate => "#ff7f0e",
            Scenario::Login => "#2ca02c",
            Scenario::Mix => "#9467bd",
        }
    }
}

/// What one client measured.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) errors: u64,
    pub(crate) last_error: Option<String>,
}

impl Tally {
    pub(crate) fn ok(&mut self, started: Instant) {
        self.latencies_us
            .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }

    pub(crate) fn error(&mut self, started: Instant, what: String) {
        self.ok(started);
        self.errors += 1;
        self.last_error = Some(what);
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if other.last_error.is_some() {
            self.last_error = other.last_error;
        }
    }
}

pub(crate) struct Shared {
    pub(crate) addr: SocketAddr,
    pub(crate) users: Vec<User>,
}

impl Shared {
    /// The server at `addr` and `n` users named `<prefix>_user_<i>`.
    pub(crate) fn new(addr: SocketAddr, prefix: &str, n: usize) -> Arc<Self> {
        let users = (0..n)
            .map(|i| User {
                username: format!("{prefix}_user_{i:02}"),
                password: format!("{prefix}-password-{i:02}"),
            })
            .collect();
        Arc::new(Self { addr, users })
    }
}

/// A tiny xorshift generator: the mix needs dice, not cryptography.
pub(crate) struct Dice(u64);

impl Dice {
    pub(crate) fn roll(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One request of a scenario; updates the session on a token answer.
pub(crate) async fn step(
    kind: Scenario,
    conn: &mut Conn,
    session: &mut Session,
    user: &User,
    dice: &mut Dice,
    tally: &mut Tally,
    health: &[u8],
) {
    let kind = match kind {
        Scenario::Mix => match dice.roll() % 100 {
            0..=89 => Scenario::Me,
            90..=98 => Scenario::Refresh,
            _ => Scenario::Login,
        },
        k => k,
    };
    let (request, expect) = match kind {
        Scenario::Health => (None, 200),
        Scenario::Me => (Some(get("/api/me", Some(&session.access))), 200),
        Scenario::Refresh => (Some(refresh_request(session)), 200),
        Scenario::Login => (Some(login_request(user)), 200),
        Scenario::RawUpdate | Scenario::Mix => unreachable!(),
    };
    let started = Instant::now();
    let result = conn.send(request.as_deref().unwrap_or(health)).await;
    match result {
        Ok(r) if r.status == expect => {
            if matches!(kind, Scenario::Refresh | Scenario::Login) {
                match serde_json::from_slice::<PairBody>(conn.body(&r)) {
                    Ok(pair) => {
                        session.access = pair.access_token;
                        session.refresh = pair.refresh_token;
                        tally.ok(started);
                    }
                    Err(e) => tally.error(started, format!("{kind:?}: bad token body: {e}")),
                }
            } else {
                tally.ok(started);
            }
        }
        Ok(r) => {
            let body = String::from_utf8_lossy(conn.body(&r)).into_owned();
            tally.error(started, format!("{kind:?}: status {}: {body}", r.status));
        }
        Err(e) => tally.error(started, format!("{kind:?}: {e}")),
    }
}

/// Runs `kind` with one client per session for `duration`. Requests that
/// are in flight at the deadline are finished and counted, and the rate is
/// taken over the whole time, so slow requests (a queue of logins) are not
/// cut off.
pub(crate) async fn run_http(
    shared: &Arc<Shared>,
    kind: Scenario,
    sessions: Vec<Session>,
    duration: Duration,
) -> (Tally, f64, Vec<Session>) {
    let clients = sessions.into_iter().map(|s| vec![s]).collect();
    let (tally, seconds, back) = run_sessions(shared, kind, clients, duration).await;
    (tally, seconds, back.into_iter().flatten().collect())
}

/// [`run_http`] with several sessions per client: client `i` sends its
/// requests with its sessions in turn, so that the server sees as many
/// distinct tokens (and session rows) as there are sessions.
pub(crate) async fn run_sessions(
    shared: &Arc<Shared>,
    kind: Scenario,
    clients: Vec<Vec<Session>>,
    duration: Duration,
) -> (Tally, f64, Vec<Vec<Session>>) {
    let concurrency = clients.len();
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let mut c = Conn::new(shared.addr);
        c.connect().await.expect("connect to keyward");
        conns.push(c);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for (i, (mut sessions, mut conn)) in clients.into_iter().zip(conns).enumerate() {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let user = shared.users[i % shared.users.len()].clone();
            let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x2545_F491_4F6C_DD1D));
            let mut tally = Tally::default();
            let health = get("/health", None);
            tokio::time::sleep_until(start.into()).await;
            let mut next = 0;
            while Instant::now() < deadline {
                step(
                    kind,
                    &mut conn,
                    &mut sessions[next],
                    &user,
                    &mut dice,
                    &mut tally,
                    &health,
                )
                .await;
                next = (next + 1) % sessions.len();
            }
            (tally, sessions)
        }));
    }
    let mut tally = Tally::default();
    let mut clients = Vec::with_capacity(concurrency);
    for t in tasks {
        let (t, s) = t.await.unwrap();
        tally.merge(t);
        clients.push(s);
    }
    (tally, start.elapsed().as_secs_f64(), clients)
}

/// The clients' tallies as one.
async fn merged(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await.unwrap());
    }
    tally
}

/// Sends `request` and counts a `200` as success.
async fn send_expecting_200(conn: &mut Conn, request: &[u8], tally: &mut Tally) {
    let started = Instant::now();
    match conn.send(request).await {
        Ok(r) if r.status == 200 => tally.ok(started),
        Ok(r) => tally.error(started, format!("status {}", r.status)),
        Err(e) => tally.error(started, e.to_string()),
    }
}

/// Deals `items` out to `clients` clients round-robin (client `i` gets
/// items `i`, `i + clients`, …); with fewer items than clients, one client
/// per item.
pub(crate) fn deal<T>(items: Vec<T>, clients: usize) -> Vec<Vec<T>> {
    let mut hands: Vec<Vec<T>> = (0..clients.min(items.len())).map(|_| Vec::new()).collect();
    let n = hands.len();
    for (i, item) in items.into_iter().enumerate() {
        hands[i % n].push(item);
    }
    hands
}

/// The same request bytes over and over, one set per client: `clients`
/// clients against `addr`, client `i` cycling through `requests[i]`,
/// `requests[i + clients]`, … for `duration`. An answer counts when it is
/// `200` and, with `must_contain`, its body contains that (introspection
/// answers `200` for an inactive token too).
pub(crate) async fn run_fixed(
    addr: SocketAddr,
    requests: &Arc<Vec<Vec<u8>>>,
    clients: usize,
    must_contain: Option<&'static [u8]>,
    duration: Duration,
) -> (Tally, f64) {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut c = Conn::new(addr);
        c.connect().await.expect("connect to the server");
        conns.push(c);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for (i, mut conn) in conns.into_iter().enumerate() {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut next = i % requests.len();
            tokio::time::sleep_until(start.into()).await;
            while Instant::now() < deadline {
                let started = Instant::now();
                match conn.send(&requests[next]).await {
                    Ok(r) if r.status == 200 => match must_contain {
                        Some(needle) if find(conn.body(&r), needle).is_none() => {
                            let body = String::from_utf8_lossy(conn.body(&r)).into_owned();
                            tally.error(started, format!("unexpected answer: {body}"));
                        }
                        _ => tally.ok(started),
                    },
                    Ok(r) => {
                        let body = String::from_utf8_lossy(conn.body(&r)).into_owned();
                        tally.error(started, format!("status {}: {body}", r.status));
                    }
                    Err(e) => tally.error(started, e.to_string()),
                }
                next = (next + clients) % requests.len();
            }
            tally
        }));
    }
    (merged(tasks).await, start.elapsed().as_secs_f64())
}

/// `/api/me` at a steady, light rate: `clients` clients, each one request
/// every `interval`. Its latency shows whether the request workers are
/// being held up, without the probe itself saturating the machine.
pub(crate) async fn probe_me(
    shared: &Arc<Shared>,
    sessions: &[Session],
    interval: Duration,
    duration: Duration,
) -> Tally {
    let mut tasks = Vec::new();
    for session in sessions.iter().cloned() {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(shared.addr);
            conn.connect().await.unwrap();
            let request = get("/api/me", Some(&session.access));
            let mut tally = Tally::default();
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let deadline = Instant::now() + duration;
            while Instant::now() < deadline {
                ticks.tick().await;
                send_expecting_200(&mut conn, &request, &mut tally).await;
            }
            tally
        }));
    }
    merged(tasks).await
}

/// Logins at a steady concurrency until `stop` is set; returns the tally.
pub(crate) async fn login_flood(
    shared: &Arc<Shared>,
    clients: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Tally {
    let mut tasks = Vec::new();
    for i in 0..clients {
        let shared = shared.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(shared.addr);
            let request = login_request(&shared.users[i % shared.users.len()]);
            let mut tally = Tally::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                send_expecting_200(&mut conn, &request, &mut tally).await;
            }
            tally
        }));
    }
    merged(tasks).await
}

/// Signs in `n` sessions, `parallel` at a time.
pub(crate) async fn sign_in(shared: &Arc<Shared>, n: usize, parallel: usize) -> Vec<Session> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel.min(n) {
        let shared = shared.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(shared.addr);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = conn
                    .send(&login_request(&shared.users[i % shared.users.len()]))
                    .await
                    .expect("login");
                assert_eq!(
                    r.status,
                    200,
                    "login: {}",
                    String::from_utf8_lossy(conn.body(&r))
                );
                let pair: PairBody = serde_json::from_slice(conn.body(&r)).unwrap();
                out.push((
                    i,
                    Session {
                        access: pair.access_token,
                        refresh: pair.refresh_token,
                    },
                ));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, s)| s).collect()
}

pub(crate) async fn register_users(shared: &Arc<Shared>, parallel: usize) {
    let mut tasks = Vec::new();
    for chunk in 0..parallel {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(shared.addr);
            for user in shared.users.iter().skip(chunk).step_by(parallel) {
                let r = conn
                    .send(&post_json(
                        "/auth/register",
                        &serde_json::json!({"username": user.username, "password": user.password}),
                    ))
                    .await
                    .expect("register");
                assert_eq!(
                    r.status,
                    201,
                    "register: {}",
                    String::from_utf8_lossy(conn.body(&r))
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

pub(crate) async fn wait_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn = Conn::new(addr);
    loop {
        if let Ok(r) = conn.send(&get("/ready", None)).await {
            if r.status == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "keyward never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
