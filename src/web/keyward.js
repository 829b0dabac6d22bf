// keyward.js: the browser client of a keyward server, for any single-page app.
// An ES module with no dependencies and no build step; import it straight
// from your keyward server (types: /keyward.d.ts).
//
//   import { createClient } from 'https://auth.example.com/keyward.js';
//
//   const kw = createClient({ baseUrl: 'https://auth.example.com' });
//   kw.onChange((e) => {
//     if (e.signedIn) showApp(kw.user);              // e.type: 'signed_in' or 'renewed'
//     else showSignIn(e.reason);                     // 'logout', 'another_tab', 'revoked',
//   });                                              // 'banned', 'expired' or 'reuse'
//   await kw.ready;                                  // signed in already? (another tab, the cookie)
//   if (!kw.user) await kw.login('ada', 'correct horse battery staple');
//   const res = await kw.fetch('/api/orders');       // adds the token; a 401 refreshes once, retries once
//   await kw.logout({ scope: 'all' });               // 'this' (default), 'others' or 'all'
//
// What it does for you:
// - Cookie mode (`X-Keyward-Client: spa`): the refresh token is an HttpOnly
//   cookie this code never sees; the access token lives in memory only.
// - It refreshes shortly before the access token expires (counted from the
//   token's own iat/exp, so a wrong clock on this machine does not matter),
//   when a hidden tab comes back, and once on a 401 from `kw.fetch`.
// - Across the tabs of this browser at most one refresh runs at a time (a Web
//   Lock); the others take its result from a BroadcastChannel instead of
//   refreshing again (several tabs refreshing at once is how sessions get
//   lost). A new tab asks the others for a token before using the cookie.
// - A sign-out in one tab signs out the others, and every sign-out says why.
// - `checkInterval` (ms, default 0: off) asks the server now and then whether
//   the session still stands, so an administrator's revocation or ban shows
//   within that time instead of at the next request.
//
// From another origin: list it in the server's `cors.allowed_origins`. The
// cookie is `SameSite=Strict`, so the page and keyward must share a site
// (app.example.com and auth.example.com do).

const TOKEN_CODES = new Set(['invalid_token', 'token_expired', 'session_revoked', 'token_reused']);

/** Why a tab was signed out, by the server's error code. */
const REASONS = {
  session_revoked: 'revoked',
  invalid_token: 'revoked',
  token_expired: 'expired',
  token_reused: 'reuse',
  user_banned: 'banned',
};

/** How long a tab that waited for another tab's refresh waits for its answer. */
const TAB_ANSWER_MS = 1000;
/** The messages that end another tab's refresh (a 'hello' does not). */
const ANSWERS = new Set(['token', 'refused', 'ended', 'signed_out']);
/** How long a new tab waits for another tab to offer a token. */
const HELLO_MS = 200;

/** A refused request: `status` and keyward's `code` (`invalid_credentials`, `rate_limited`, ...). */
export class KeywardError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'KeywardError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const http = (...args) => globalThis.fetch(...args); // looked up at each call

/**
 * The JSON body of a keyward answer (null for none), or a `KeywardError`
 * with keyward's `error` code when the status is not 2xx.
 */
export async function readResponse(res) {
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) {
    throw new KeywardError(res.status, data?.error || 'internal',
      data?.message || `The server answered ${res.status}.`, res.headers.get('Retry-After'));
  }
  return data;
}

function claimsOf(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

// A token pair from the server, with its expiry on this machine's clock.
function fromServer(data) {
  const c = claimsOf(data.access_token);
  const lifetime = Number.isFinite(c.exp) && Number.isFinite(c.iat) ? c.exp - c.iat : Number(data.expires_in) || 60;
  return {
    token: data.access_token,
    user: data.user || { id: c.sub, username: c.username || '', name: c.name ?? null, admin: !!c.admin },
    sessionId: data.session_id || c.sid,
    expiresAt: Date.now() + lifetime * 1000,
    lifetimeMs: lifetime * 1000,
  };
}

// Whether a 401 says "this token is no good" (worth a refresh), rather than,
// say, a wrong current password (also a 401, which a retry would count twice).
async function isTokenRefusal(res) {
  if (/invalid_token/.test(res.headers.get('WWW-Authenticate') || '')) return true;
  if (!/json/.test(res.headers.get('Content-Type') || '')) return true;
  try {
    const code = (await res.clone().json())?.error;
    return typeof code !== 'string' || TOKEN_CODES.has(code);
  } catch {
    return true;
  }
}

/**
 * A client of the keyward server at `baseUrl` ('' for this page's origin).
 * @param {{ baseUrl?: string, checkInterval?: number }} [options]
 */
export function createClient({ baseUrl = '', checkInterval = 0 } = {}) {
  const base = String(baseUrl).replace(/\/+$/, '');
  const name = `keyward ${base}`;
  let token = null;
  let user = null;
  let sessionId = null;
  let expiresAt = 0;
  let lifetimeMs = 0;
  let generation = 0; // bumped at every sign-in and sign-out: late answers for the old one are dropped
  let refreshing = null; // this tab's refresh in flight, shared by all callers
  let refreshTimer = 0;
  let checkTimer = 0;
  const listeners = new Set();
  const waiting = new Set(); // callers waiting for another tab's news

  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(name) : null;
  const broadcast = (msg) => channel?.postMessage(msg);
  const current = () => ({ token, user, sessionId, expiresAt, lifetimeMs });

  function emit(type, extra = {}) {
    const event = { type, signedIn: !!token, user, sessionId, expiresAt: token ? expiresAt : null, reason: null, ...extra };
    for (const fn of [...listeners]) {
      try { fn(event); } catch (err) { setTimeout(() => { throw err; }); }
    }
  }

  async function request(method, path, { body, bearer } = {}) {
    const headers = { Accept: 'application/json', 'X-Keyward-Client': 'spa' };
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    const init = { method, headers, credentials: 'include', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await http(base + path, init);
    } catch {
      throw new KeywardError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
    }
    return readResponse(res);
  }

  // Takes a token (ours or another tab's) as the one to use.
  function adopt(t) {
    const fresh = !token || sessionId !== t.sessionId || user?.id !== t.user?.id;
    if (fresh) generation += 1;
    ({ token, user, sessionId, expiresAt, lifetimeMs } = t);
    scheduleRefresh();
    if (fresh && checkInterval > 0) {
      clearInterval(checkTimer);
      checkTimer = setInterval(check, checkInterval);
    }
    emit(fresh ? 'signed_in' : 'renewed');
  }

  function signOut(reason, extra = {}) {
    generation += 1;
    token = user = sessionId = null;
    expiresAt = lifetimeMs = 0;
    clearTimeout(refreshTimer);
    clearInterval(checkTimer);
    emit('signed_out', { reason, ...extra });
  }

  // The server refused this session: end it here and in the other tabs.
  function end(code) {
    const reason = REASONS[code] || 'revoked';
    broadcast({ type: 'ended', reason, sessionId });
    signOut(reason);
  }

  // ~10 s before expiry (or at 80% of a short lifetime), with a little jitter
  // so that tabs do not all wake at the same instant.
  function scheduleRefresh(delay) {
    clearTimeout(refreshTimer);
    if (delay === undefined) {
      const lead = Math.min(10000, lifetimeMs * 0.2) + Math.random() * Math.min(1000, lifetimeMs * 0.05);
      delay = Math.max(500, expiresAt - lead - Date.now());
    }
    refreshTimer = setTimeout(() => { refresh(token).catch(() => {}); }, delay);
  }

  // Resolves with the type of the next message from another tab, or null.
  function newsFromAnotherTab(ms) {
    return new Promise((resolve) => {
      const done = (type) => { clearTimeout(timer); waiting.delete(done); resolve(type); };
      const timer = setTimeout(() => done(null), ms);
      waiting.add(done);
    });
  }

  // One tab of the browser at a time; `fn(true)` when another tab held the lock.
  async function oneTabAtATime(fn) {
    if (!globalThis.navigator?.locks?.request) return fn(false);
    const got = await navigator.locks.request(name, { ifAvailable: true },
      async (lock) => (lock ? { value: await fn(false) } : null));
    if (got) return got.value;
    return navigator.locks.request(name, () => fn(true));
  }

  // Resolves true with a valid token in place, false when the server refused
  // (the session, if any, is then ended); rejects on a transient failure.
  // `stale` is the token the caller found wanting.
  function refresh(stale = token) {
    if (token && token !== stale) return Promise.resolve(true);
    if (refreshing) return refreshing;
    const gen = generation;
    refreshing = oneTabAtATime(async (waited) => {
      // The tab that held the lock posted its result before letting go; the
      // message may still be on its way.
      if (waited && !(token && token !== stale)) {
        const news = await newsFromAnotherTab(TAB_ANSWER_MS);
        if (news === 'refused' && !token && !stale) return false;
      }
      if (token && token !== stale) {
        broadcast({ type: 'token', ...current() }); // for tabs queued behind this one
        return true;
      }
      if (gen !== generation) return !!token;
      try {
        const t = fromServer(await request('POST', '/auth/refresh'));
        if (gen !== generation) return !!token;
        adopt(t);
        broadcast({ type: 'token', ...t });
        return true;
      } catch (err) {
        if (gen !== generation) return !!token;
        if (err.status === 401 || err.status === 403) {
          if (token) end(err.code);
          else broadcast({ type: 'refused' });
          return false;
        }
        if (token) scheduleRefresh(5000); // network, 429, 503: keep going, try again soon
        throw err;
      }
    }).finally(() => { refreshing = null; });
    return refreshing;
  }

  async function authFetch(input, init = {}) {
    const send = (bearer) => {
      const isRequest = typeof Request === 'function' && input instanceof Request;
      const headers = new Headers(init.headers || (isRequest ? input.headers : undefined));
      if (bearer) headers.set('Authorization', `Bearer ${bearer}`);
      return http(isRequest ? input.clone() : input, { ...init, headers });
    };
    const used = token;
    const res = await send(used);
    if (res.status !== 401 || !used || !(await isTokenRefusal(res))) return res;
    let renewed;
    try {
      renewed = await refresh(used);
    } catch {
      return res;
    }
    return renewed && token ? send(token) : res;
  }

  // Notices a revocation or ban: /api/me answers 401 at once, and the
  // refresh that follows tells why.
  function check() {
    if (token) authFetch(`${base}/api/me`, { cache: 'no-store' }).catch(() => {});
  }

  channel?.addEventListener('message', ({ data }) => {
    if (!data || typeof data !== 'object') return;
    switch (data.type) {
      case 'token': // another tab signed in or refreshed
        if (data.token && data.user && (!token || data.sessionId !== sessionId || data.expiresAt > expiresAt)) adopt(data);
        break;
      case 'hello': // a new tab asks whether someone is signed in
        if (token && expiresAt - Date.now() > 5000) broadcast({ type: 'token', ...current() });
        break;
      case 'signed_out':
        if (token) signOut('another_tab', { scope: data.scope || 'this' });
        break;
      case 'ended': // another tab found the shared session refused
        if (token && (!data.sessionId || data.sessionId === sessionId)) signOut(data.reason || 'revoked');
        break;
      default:
    }
    if (ANSWERS.has(data.type)) for (const done of [...waiting]) done(data.type);
  });

  // Timers are throttled in background tabs: catch up when the tab comes back.
  globalThis.document?.addEventListener('visibilitychange', () => {
    if (document.hidden || !token) return;
    if (expiresAt - Date.now() < 10000) refresh(token).catch(() => {});
    else if (checkInterval > 0) check();
  });

  // Ask the other tabs first; if none offers a token, try the cookie.
  async function boot() {
    if (channel) {
      broadcast({ type: 'hello' });
      await new Promise((resolve) => setTimeout(resolve, HELLO_MS));
      if (token) return;
    }
    try {
      await refresh(null);
    } catch {
      // the server is unreachable: signed out for now
    }
  }

  return {
    /** Settles once the start-up check (another tab, then the cookie) is over. */
    ready: boot(),
    get user() { return user; },
    get sessionId() { return sessionId; },
    /** When the access token expires, in ms on this machine's clock; null when signed out. */
    get expiresAt() { return token ? expiresAt : null; },

    async login(username, password) {
      const t = fromServer(await request('POST', '/auth/login', { body: { username, password } }));
      adopt(t);
      broadcast({ type: 'token', ...t });
      return t.user;
    },

    async logout({ scope = 'this' } = {}) {
      // The cookie names the session; the Bearer token goes too unless it is about to lapse.
      const bearer = token && expiresAt - Date.now() > 3000 ? token : null;
      const query = scope === 'this' ? '' : `?scope=${encodeURIComponent(scope)}`;
      try {
        await request('POST', `/auth/logout${query}`, { bearer });
      } catch (err) {
        if (err.status !== 401) throw err; // a 401: the session is gone already
      }
      if (scope === 'others') return;
      broadcast({ type: 'signed_out', scope });
      signOut('logout', { scope });
    },

    fetch: authFetch,

    /** Calls `fn(event)` at every sign-in, renewal and sign-out; returns the unsubscribe. */
    onChange(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}
