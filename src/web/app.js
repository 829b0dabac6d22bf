// keyward browser app: sign in / sign up, your sessions, and the admin panel.
//
// The sign-in itself (the access token in memory, refreshes, one sign-in
// shared by the tabs, sign-outs and why) is keyward.js's, the client module
// any other single-page app can use too; this file is the page around it.
// The module runs in cookie mode (`X-Keyward-Client: spa`): the refresh token
// is an HttpOnly cookie that no script here ever sees.

import { createClient, KeywardError, readResponse } from '/keyward.js';

import { loadOverview, clearOverview } from './overview.js';
import { startRename } from './session_name.js';

const $ = (id) => document.getElementById(id);

const CHECK_EVERY_MS = 2000; // how soon an admin's revocation or ban reaches this tab
const PAGE_USERS = 20;
const PAGE_EVENTS = 25;

const kw = createClient({ checkInterval: CHECK_EVERY_MS });

const END_MESSAGES = {
  revoked: 'Your session was revoked. Please sign in again.',
  reuse: 'Your session was ended for safety: its refresh token was used twice. Please sign in again.',
  expired: 'Your session expired. Please sign in again.',
  banned: 'Your account is banned.',
};

// What the page says when the module signs it out.
function signOutMessage({ reason, scope }) {
  if (scope === 'all') return ['You have been signed out on all your devices.', 'info'];
  if (reason === 'logout') return ['You have been signed out.', 'info'];
  if (reason === 'another_tab') return ['You signed out in another tab.', 'info'];
  return [END_MESSAGES[reason] || END_MESSAGES.revoked, 'error'];
}

// ---------------------------------------------------------------- state

let generation = 0; // bumped at every sign-in/out so late answers for the old one are dropped
let tickTimer = 0;
let signOutNote = null; // a message that replaces the module's reason at the next sign-out

let usersQuery = '';
let usersNext = null;
let adminSessionsOf = null; // {id, username} shown in #admin-sessions
let eventsUser = '';
let eventsBefore = null;

// For tests only: what is visible, never the token.
// `booted`: the start-up check (another tab, then the refresh cookie) is over.
const state = { booted: false, signedIn: false, username: null, sessionId: null, accessExpiresAt: null };
Object.defineProperty(window, 'keyward', {
  value: Object.freeze({ get state() { return Object.freeze({ ...state }); } }),
});

// Thrown when the sign-in changed while a request was in flight: callers ignore it.
const STALE = new KeywardError(0, 'stale', '');

// ---------------------------------------------------------------- HTTP

// A call with the access token (kw.fetch refreshes and retries once on a
// 401); a refusal that signed this tab out becomes STALE.
async function api(method, path, body) {
  const gen = generation;
  const init = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await kw.fetch(path, init);
  } catch {
    throw new KeywardError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
  }
  if (gen !== generation) throw STALE;
  return readResponse(res);
}

function friendly(err) {
  switch (err.code) {
    case 'rate_limited':
      return `Too many attempts. Please wait ${err.retryAfter ? `${err.retryAfter} seconds` : 'a moment'} and try again.`;
    case 'unavailable':
      return 'The service is briefly unavailable. Please try again in a moment.';
    case 'internal':
      return 'Something went wrong on the server. Please try again.';
    case 'user_banned':
      return END_MESSAGES.banned;
    default:
      return err.message || 'Something went wrong.';
  }
}

// ---------------------------------------------------------------- session life

kw.onChange((change) => {
  Object.assign(state, {
    signedIn: change.signedIn,
    username: change.user?.username ?? null,
    sessionId: change.sessionId,
    accessExpiresAt: change.expiresAt,
  });
  if (change.type === 'signed_in') showDashboard();
  else if (change.type === 'renewed') tick();
  else {
    const [message, kind] = signOutNote || signOutMessage(change);
    signOutNote = null;
    showSignIn(message, kind);
  }
});

function showSignIn(message, kind) {
  generation += 1;
  clearInterval(tickTimer);
  tick();
  clearAccountData();
  $('signin-password').value = '';
  const focusWasInside = $('dashboard').contains(document.activeElement);
  $('dashboard').hidden = true;
  $('admin-panel').hidden = true;
  $('auth').hidden = false;
  showForm('signin');
  say(message, kind);
  if (focusWasInside) $('signin-username').focus(); // keyboard users keep their place
}

// Nothing of one sign-in stays in the page for the next (another user may sign in here).
function clearAccountData() {
  for (const id of ['sessions-list', 'admin-users', 'admin-sessions', 'events-list']) $(id).replaceChildren();
  for (const id of ['me-username', 'me-name']) $(id).textContent = '';
  $('password-form').reset();
  $('admin-users-more').hidden = true;
  clearOverview();
}

function showDashboard() {
  generation += 1;
  const { user } = kw;
  say('');
  clearAccountData();
  $('auth').hidden = true;
  $('signin-form').hidden = true;
  $('signup-form').hidden = true;
  $('signin-form').reset();
  $('signup-form').reset();
  $('dashboard').hidden = false;
  $('me-username').textContent = user.username;
  $('me-name').textContent = user.name || '';
  $('me-admin').hidden = !user.admin;
  $('admin-panel').hidden = !user.admin;
  clearInterval(tickTimer);
  tickTimer = setInterval(tick, 1000);
  tick();
  loadSessions().catch(report);
  if (user.admin) {
    usersQuery = '';
    $('admin-search').value = '';
    adminSessionsOf = null;
    $('admin-sessions-title').textContent = 'Sessions';
    $('admin-sessions-hint').hidden = false;
    searchUsers(false).catch(report);
    loadEvents(false).catch(report);
    loadOverview((path) => api('GET', path)).catch(report);
  }
}

$('overview-reload').addEventListener('click', (e) => run(e.currentTarget, () => loadOverview((path) => api('GET', path))));

function tick() {
  const el = $('token-countdown');
  const expiresAt = kw.expiresAt;
  if (!expiresAt) { el.textContent = '–'; return; }
  const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
  const m = Math.floor(left / 60);
  const s = String(left % 60).padStart(2, '0');
  el.textContent = left > 0 ? `${m}:${s}` : 'renewing…';
  el.classList.toggle('soon', left <= 10);
  el.title = `at ${new Date(expiresAt).toLocaleTimeString()}`;
}

// ---------------------------------------------------------------- DOM helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c); // strings become text nodes
  return node;
}

function say(text, kind = 'info') {
  const m = $('message');
  m.textContent = text || '';
  m.className = `message ${kind}`;
}

function report(err) {
  if (err !== STALE && err?.code !== 'stale') say(friendly(err), 'error');
}

// Runs an action from a button or form: disables the button meanwhile, shows errors.
async function run(button, action) {
  if (button) button.disabled = true;
  try {
    await action();
  } catch (err) {
    report(err);
  } finally {
    if (button) button.disabled = false;
  }
}

function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

const shortId = (id) => (id ? String(id).slice(0, 8) : '—');

// "Firefox on Linux" out of a user agent string; the full string goes in a tooltip.
function describeAgent(ua) {
  if (!ua) return 'Unknown device';
  const browser = [[/Edg\//, 'Edge'], [/OPR\//, 'Opera'], [/Firefox\//, 'Firefox'], [/Chrom(e|ium)\//, 'Chrome'],
    [/Safari\//, 'Safari'], [/curl\//, 'curl'], [/python/i, 'Python']].find(([re]) => re.test(ua));
  const os = [[/Android/, 'Android'], [/iPhone|iPad/, 'iOS'], [/Windows/, 'Windows'], [/Mac OS X/, 'macOS'],
    [/Linux/, 'Linux']].find(([re]) => re.test(ua));
  if (!browser) return ua.length > 40 ? `${ua.slice(0, 40)}…` : ua;
  return os ? `${browser[1]} on ${os[1]}` : browser[1];
}

function sessionRow(s, cls, extra) {
  const meta = [`last used from ${s.last_ip || s.ip || 'an unknown address'}`, `signed in ${fmtTime(s.created_at)}`,
    `last active ${fmtTime(s.last_used_at)}`, `expires ${fmtTime(s.expires_at)}`];
  return el('li', { class: cls, dataset: { sessionId: s.id } },
    el('div', { class: 'row-main' },
      el('div', { class: 'row-title' }, el('strong', { title: s.user_agent || '' }, s.name || s.device || describeAgent(s.user_agent)), ...extra.badges),
      el('div', { class: 'meta' }, meta.join(' · ')),
      extra.note ? el('div', { class: 'meta' }, extra.note) : null),
    el('div', { class: 'row-actions' }, ...extra.buttons));
}

// ---------------------------------------------------------------- forms

function showForm(which) {
  $('signin-form').hidden = which !== 'signin';
  $('signup-form').hidden = which !== 'signup';
}

async function signIn(username, password) {
  say('');
  await kw.login(username, password); // the dashboard opens from kw.onChange
}

$('show-signup').addEventListener('click', () => { say(''); showForm('signup'); $('signup-username').focus(); });
$('show-signin').addEventListener('click', () => { say(''); showForm('signin'); $('signin-username').focus(); });

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const username = $('signin-username').value.trim();
  const password = $('signin-password').value;
  if (!username || !password) { say('Enter your username and password.', 'error'); return; }
  run($('signin-submit'), async () => {
    try {
      await signIn(username, password);
    } catch (err) {
      $('signin-password').value = '';
      throw err;
    }
  });
});

$('signup-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const username = $('signup-username').value.trim();
  const name = $('signup-name').value.trim();
  const password = $('signup-password').value;
  if (!username || !password) { say('Choose a username and a password.', 'error'); return; }
  run($('signup-submit'), async () => {
    await api('POST', '/auth/register', name ? { username, password, name } : { username, password });
    await signIn(username, password);
    say(`Welcome, ${name || username}! Your account is ready.`, 'success');
  });
});

$('password-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const current_password = $('current-password').value;
  const new_password = $('new-password').value;
  if (!current_password || !new_password) { say('Enter your current and your new password.', 'error'); return; }
  run($('password-submit'), async () => {
    await api('POST', '/auth/password', { current_password, new_password });
    $('password-form').reset();
    say('Password changed. Your other sessions were signed out.', 'success');
    await loadSessions();
  });
});

// The page's message comes from kw.onChange (reason `logout`, and the scope).
const logout = (everywhere) => kw.logout({ scope: everywhere ? 'all' : 'this' });

$('logout').addEventListener('click', (e) => run(e.currentTarget, () => logout(false)));
$('logout-all').addEventListener('click', (e) => run(e.currentTarget, () => logout(true)));

// ---------------------------------------------------------------- own sessions

async function loadSessions() {
  const data = await api('GET', '/auth/sessions');
  const list = (data?.sessions || []).slice()
    .sort((a, b) => (b.current - a.current) || String(b.last_used_at).localeCompare(String(a.last_used_at)));
  const ul = $('sessions-list');
  ul.replaceChildren(...list.map((s) => sessionRow(s, s.current ? 'session current' : 'session', {
    badges: s.current ? [el('span', { class: 'badge current' }, 'this browser')] : [],
    buttons: [el('button', { type: 'button', class: 'btn small secondary rename-session',
      'aria-label': `Rename session ${s.name || s.device || shortId(s.id)}` }, 'Rename'),
    el('button', { type: 'button', class: 'btn small danger revoke-session',
      'aria-label': s.current ? 'Revoke this browser’s session' : `Revoke session ${shortId(s.id)}` }, 'Revoke')],
  })));
  if (!list.length) ul.append(el('li', { class: 'empty' }, 'No live sessions.'));
}

$('sessions-reload').addEventListener('click', (e) => run(e.currentTarget, loadSessions));

$('sessions-list').addEventListener('click', (e) => {
  const rename = e.target.closest('button.rename-session');
  if (rename) {
    const id = rename.closest('.session').dataset.sessionId;
    startRename(rename.closest('.session'), async (name) => {
      await api('PATCH', `/auth/sessions/${encodeURIComponent(id)}`, { name });
      say('Session renamed.', 'success');
      await loadSessions();
    }, report);
    return;
  }
  const button = e.target.closest('button.revoke-session');
  if (!button) return;
  const row = button.closest('.session');
  run(button, async () => {
    await api('DELETE', `/auth/sessions/${encodeURIComponent(row.dataset.sessionId)}`);
    if (row.classList.contains('current')) {
      // Logging out the revoked session still clears the cookie and tells
      // the other tabs.
      signOutNote = ['You revoked this browser’s session.', 'info'];
      await kw.logout();
      return;
    }
    say('Session revoked.', 'success');
    await loadSessions();
  });
});

// ---------------------------------------------------------------- admin: users

function userRow(u) {
  const bannedNow = u.banned && (!u.banned_until || new Date(u.banned_until) > new Date());
  const badges = [];
  if (u.admin) badges.push(el('span', { class: 'badge admin' }, 'admin'));
  if (bannedNow) badges.push(el('span', { class: 'badge banned' }, u.banned_until ? `banned until ${fmtTime(u.banned_until)}` : 'banned'));
  const sessions = Number(u.active_sessions) || 0;
  const meta = [`${sessions} active session${sessions === 1 ? '' : 's'}`, `joined ${fmtTime(u.created_at)}`,
    `last sign-in ${u.last_login_at ? fmtTime(u.last_login_at) : 'never'}`];
  const button = (cls, text, label) => el('button', { type: 'button', class: `btn small ${cls}`, 'aria-label': `${label} ${u.username}` }, text);
  return el('li', { class: bannedNow ? 'admin-user banned' : 'admin-user', dataset: { userId: u.id, username: u.username } },
    el('div', { class: 'row-main' },
      el('div', { class: 'row-title' }, el('strong', {}, u.username), u.name ? el('span', { class: 'muted' }, u.name) : null, ...badges),
      el('div', { class: 'meta' }, meta.join(' · ')),
      bannedNow && u.ban_reason ? el('div', { class: 'meta' }, `Reason: ${u.ban_reason}`) : null,
      el('div', { class: 'meta mono', title: 'User id' }, u.id)),
    el('div', { class: 'row-actions' },
      button('secondary show-user-sessions', 'Sessions', 'Show sessions of'),
      button('secondary show-user-events', 'Events', 'Show events of'),
      bannedNow ? button('secondary unban-user', 'Unban', 'Unban') : button('danger ban-user', 'Ban', 'Ban'),
      button('danger revoke-user-sessions', 'Revoke sessions', 'Revoke all sessions of')));
}

async function searchUsers(more) {
  const params = new URLSearchParams({ limit: String(PAGE_USERS) });
  if (usersQuery) params.set('q', usersQuery);
  if (more && usersNext) params.set('after', usersNext);
  const data = await api('GET', `/admin/users?${params}`);
  const users = data?.users || [];
  const ul = $('admin-users');
  if (!more) ul.replaceChildren();
  ul.append(...users.map(userRow));
  if (!more && !users.length) ul.append(el('li', { class: 'empty' }, 'No users match.'));
  usersNext = data?.next ?? null;
  $('admin-users-more').hidden = !usersNext;
}

// Redraw one user's row in place after an action (keeps the list's paging).
async function refreshUser(id) {
  const data = await api('GET', `/admin/users/${encodeURIComponent(id)}`);
  const u = data?.user ?? data;
  const old = [...$('admin-users').querySelectorAll('.admin-user')].find((li) => li.dataset.userId === id);
  if (old && u) old.replaceWith(userRow(u));
}

async function afterAdminAction(id) {
  await Promise.all([
    refreshUser(id),
    adminSessionsOf?.id === id ? showUserSessions(adminSessionsOf) : null,
    loadEvents(false),
  ]);
}

$('admin-search-form').addEventListener('submit', (e) => {
  e.preventDefault();
  usersQuery = $('admin-search').value.trim();
  run($('admin-search-submit'), () => searchUsers(false));
});
$('admin-users-more').addEventListener('click', (e) => run(e.currentTarget, () => searchUsers(true)));

$('admin-users').addEventListener('click', (e) => {
  const button = e.target.closest('button');
  const row = button?.closest('.admin-user');
  if (!row) return;
  const who = { id: row.dataset.userId, username: row.dataset.username };
  const path = `/admin/users/${encodeURIComponent(who.id)}`;
  const has = (cls) => button.classList.contains(cls);
  if (has('show-user-sessions')) run(button, () => showUserSessions(who));
  else if (has('show-user-events')) {
    $('events-user').value = who.id;
    eventsUser = who.id;
    run(button, () => loadEvents(false));
  } else if (has('ban-user')) run(button, () => banUser(who));
  else if (has('unban-user')) {
    run(button, async () => {
      await api('POST', `${path}/unban`);
      say(`${who.username} is no longer banned.`, 'success');
      await afterAdminAction(who.id);
    });
  } else if (has('revoke-user-sessions')) {
    run(button, async () => {
      await api('DELETE', `${path}/sessions`);
      say(`All sessions of ${who.username} were revoked.`, 'success');
      await afterAdminAction(who.id);
    });
  }
});

async function banUser(who) {
  const reason = $('ban-reason').value.trim();
  const durationText = $('ban-duration').value.trim();
  const body = {};
  if (reason) body.reason = reason;
  if (durationText) {
    const seconds = Number(durationText);
    if (!Number.isInteger(seconds) || seconds <= 0) {
      say('The ban duration must be a whole number of seconds, or empty for a ban until unbanned.', 'error');
      $('ban-duration').focus();
      return;
    }
    body.duration_seconds = seconds;
  }
  await api('POST', `/admin/users/${encodeURIComponent(who.id)}/ban`, body);
  say(`${who.username} is banned ${body.duration_seconds ? `for ${body.duration_seconds} seconds` : 'until unbanned'}; their sessions were revoked.`, 'success');
  await afterAdminAction(who.id);
}

// ---------------------------------------------------------------- admin: sessions

async function showUserSessions(who) {
  adminSessionsOf = who;
  const data = await api('GET', `/admin/users/${encodeURIComponent(who.id)}/sessions?include_revoked=true`);
  const list = Array.isArray(data) ? data : data?.sessions || [];
  $('admin-sessions-title').textContent = `Sessions of ${who.username}`;
  $('admin-sessions-hint').hidden = true;
  const ul = $('admin-sessions');
  ul.replaceChildren(...list.map((s) => {
    const revoked = !!s.revoked_at;
    return sessionRow(s, revoked ? 'admin-session revoked' : 'admin-session', {
      badges: [revoked ? el('span', { class: 'badge banned' }, 'revoked') : el('span', { class: 'badge live' }, 'active')],
      note: revoked ? `Revoked ${fmtTime(s.revoked_at)}${s.revoked_reason ? ` — ${s.revoked_reason}` : ''}` : null,
      buttons: revoked ? [] : [el('button', { type: 'button', class: 'btn small danger revoke-admin-session',
        'aria-label': `Revoke session ${shortId(s.id)} of ${who.username}` }, 'Revoke')],
    });
  }));
  if (!list.length) ul.append(el('li', { class: 'empty' }, `${who.username} has no sessions.`));
}

$('admin-sessions').addEventListener('click', (e) => {
  const button = e.target.closest('button.revoke-admin-session');
  if (!button || !adminSessionsOf) return;
  const id = button.closest('.admin-session').dataset.sessionId;
  run(button, async () => {
    await api('DELETE', `/admin/sessions/${encodeURIComponent(id)}`);
    say('Session revoked.', 'success');
    await afterAdminAction(adminSessionsOf.id);
  });
});

// ---------------------------------------------------------------- admin: events

function describeDetail(detail) {
  if (detail === null || detail === undefined) return '';
  if (typeof detail !== 'object') return String(detail);
  return Object.entries(detail)
    .map(([k, v]) => `${k}: ${v !== null && typeof v === 'object' ? JSON.stringify(v) : v}`)
    .join(', ');
}

function idCell(id, filterable) {
  if (!id) return el('td', { class: 'muted' }, '—');
  const inner = filterable
    ? el('button', { type: 'button', class: 'link mono filter-user', title: `Show only ${id}`, dataset: { userId: id } }, shortId(id))
    : el('span', { class: 'mono', title: id }, shortId(id));
  return el('td', {}, inner);
}

async function loadEvents(more) {
  const params = new URLSearchParams({ limit: String(PAGE_EVENTS) });
  if (eventsUser) params.set('user_id', eventsUser);
  if (more && eventsBefore !== null) params.set('before', String(eventsBefore));
  const data = await api('GET', `/admin/events?${params}`);
  const events = data?.events || [];
  const body = $('events-list');
  if (!more) body.replaceChildren();
  body.append(...events.map((ev) => el('tr', { class: 'event', dataset: { eventId: ev.id } },
    el('td', { class: 'nowrap' }, fmtTime(ev.at)),
    el('td', {}, el('span', { class: `kind kind-${String(ev.kind).replace(/[^a-z_]/g, '')}` }, String(ev.kind).replace(/_/g, ' '))),
    idCell(ev.user_id, true),
    idCell(ev.session_id, false),
    idCell(ev.actor_id, true),
    el('td', { class: 'nowrap' }, ev.ip || '—'),
    el('td', { class: 'detail' }, describeDetail(ev.detail)))));
  if (!more && !events.length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'No events.')));
  if (events.length) eventsBefore = events[events.length - 1].id; // newest first: the last is the oldest
  const done = events.length < PAGE_EVENTS;
  $('events-more').disabled = done;
  $('events-more').textContent = done ? 'No older events' : 'Older events';
}

$('events-form').addEventListener('submit', (e) => {
  e.preventDefault();
  eventsUser = $('events-user').value.trim();
  run($('events-filter-submit'), () => loadEvents(false));
});

// run() re-enables the button; loadEvents() then decides whether more exist.
$('events-more').addEventListener('click', (e) => {
  const button = e.currentTarget;
  run(button, () => loadEvents(true)).then(() => { button.disabled = button.textContent === 'No older events'; });
});

$('events-list').addEventListener('click', (e) => {
  const button = e.target.closest('button.filter-user');
  if (!button) return;
  eventsUser = button.dataset.userId;
  $('events-user').value = eventsUser;
  run(null, () => loadEvents(false));
});

// ---------------------------------------------------------------- start

// The module's start-up check (another tab, then the refresh cookie): the
// sign-in form shows meanwhile.
kw.ready.finally(() => { state.booted = true; });
