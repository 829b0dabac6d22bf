// Types of keyward's browser client module, /keyward.js.
//
//   import { createClient } from 'https://auth.example.com/keyward.js';
//   const kw = createClient({ baseUrl: 'https://auth.example.com' });

/** The signed-in user, as keyward's token pair names them. */
export interface KeywardUser {
  id: string;
  username: string;
  name: string | null;
  admin: boolean;
}

/**
 * Why a tab was signed out: `logout` (in this tab), `another_tab` (a logout in
 * another tab of this browser), `revoked` (logged out elsewhere, revoked by an
 * administrator, password changed), `banned`, `expired` (the session's
 * lifetime is over), `reuse` (its refresh token was used twice: possibly
 * stolen).
 */
export type SignOutReason = 'logout' | 'another_tab' | 'revoked' | 'banned' | 'expired' | 'reuse';

export type LogoutScope = 'this' | 'others' | 'all';

export interface KeywardChange {
  /** `signed_in`: a new sign-in (here or in another tab); `renewed`: a new access token. */
  type: 'signed_in' | 'renewed' | 'signed_out';
  signedIn: boolean;
  user: KeywardUser | null;
  sessionId: string | null;
  /** When the access token expires, in ms since the epoch on this machine's clock. */
  expiresAt: number | null;
  /** Set when `type` is `signed_out`. */
  reason: SignOutReason | null;
  /** With `logout` and `another_tab`: the scope of the logout. */
  scope?: LogoutScope;
}

export interface KeywardClientOptions {
  /** The keyward server, e.g. `https://auth.example.com`; `''` (default) for this page's origin. */
  baseUrl?: string;
  /** Every this many ms, ask the server whether the session still stands (0, the default: never). */
  checkInterval?: number;
}

export interface KeywardClient {
  /** Settles once the start-up check (another tab, then the refresh cookie) is over. */
  readonly ready: Promise<void>;
  readonly user: KeywardUser | null;
  readonly sessionId: string | null;
  /** When the access token expires, in ms since the epoch on this machine's clock. */
  readonly expiresAt: number | null;
  /** Signs in; rejects with a `KeywardError` (`invalid_credentials`, `user_banned`, `rate_limited` ...). */
  login(username: string, password: string): Promise<KeywardUser>;
  /** Logs out this session (default), every other one, or all; signs out the other tabs too. */
  logout(options?: { scope?: LogoutScope }): Promise<void>;
  /** `fetch` with the access token; a 401 for the token refreshes once and retries once. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Calls `listener` at every sign-in, renewal and sign-out; returns the unsubscribe. */
  onChange(listener: (change: KeywardChange) => void): () => void;
}

/** A refused request: the HTTP status and keyward's error code. */
export class KeywardError extends Error {
  readonly status: number;
  /** keyward's `error` code, or `network` when the server could not be reached. */
  readonly code: string;
  /** The `Retry-After` header (seconds), if any. */
  readonly retryAfter: string | null;
}

export function createClient(options?: KeywardClientOptions): KeywardClient;

/** The JSON body of a keyward answer (null for none); rejects with a `KeywardError` unless 2xx. */
export function readResponse(response: Response): Promise<unknown>;
