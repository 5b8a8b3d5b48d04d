// SPDX-License-Identifier: MIT
// Types for the securelink client (index.cjs, index.mjs).

/** /run/securelink/securelinkd.sock */
export declare const DEFAULT_SOCKET: string;
/** Longest request line the daemon takes, in bytes including the LF (8192). */
export declare const LINE_MAX: number;
/** The cookie a grant({ form: 'cookie' }) answer sets: securelink_grant. */
export declare const GRANT_COOKIE: string;

export type ErrorCode =
  | 'bad-request' | 'unknown-verb' | 'line-too-long' | 'bad-target' | 'bad-ttl'
  | 'ttl-too-long' | 'bad-ip' | 'forbidden' | 'unavailable' | 'internal'
  | 'unreachable' | 'disconnected' | 'timeout' | 'protocol';

/** A failed request: code is the daemon's ERR code or the client's own. */
export declare class SecurelinkError extends Error {
  readonly code: ErrorCode | string;
  /** The daemon's (or the client's) message, without the code. */
  readonly detail: string;
  /** signMany(): the position of the path that failed; else null. */
  readonly index: number | null;
}

export interface ClientOptions {
  /** Default: $SECURELINK_SOCKET, else /run/securelink/securelinkd.sock. */
  socket?: string;
  /** Milliseconds a call may go without progress before "timeout" (5000). */
  timeout?: number;
}

export interface SignOptions {
  /** Lifetime in seconds (default: the daemon's default_link_ttl). */
  ttl?: number;
  /** Expiry as a unix time in seconds; exclusive with ttl. */
  expires?: number;
  /** Bind the link to this client address (daemon with bind_ip = yes). */
  ip?: string;
}

export interface GrantOptions {
  /** 'path' (default): a base URL ending in '/'; 'cookie': a Set-Cookie value. */
  form?: 'path' | 'cookie';
  /** Lifetime in seconds (default: the daemon's default_link_ttl). */
  ttl?: number;
  /** Bind the grant to this client address (daemon with bind_ip = yes). */
  ip?: string;
}

export interface Verdict {
  status: 'valid' | 'expired' | 'invalid' | 'public';
  /** True when nginx would serve the link: valid, or public. */
  valid: boolean;
  kid: number | null;
  expires: number | null;
  reason: string | null;
}

export interface Status {
  active_kid: number;
  next_rotation: number;
  keys: Array<{ kid: number; state: string; [field: string]: unknown }>;
  nginx: { [field: string]: unknown };
  counters: { signed: number; errors: number; rotations: number; [field: string]: number };
  [field: string]: unknown;
}

export declare class Client {
  constructor(options?: ClientOptions);
  readonly socket: string;
  readonly timeout: number;
  ping(): Promise<true>;
  sign(path: string, options?: SignOptions): Promise<string>;
  /** A directory grant (dir ends in '/'): a base URL, or a Set-Cookie value;
   *  a public directory's plain URL in both forms. */
  grant(dir: string, options?: GrantOptions): Promise<string>;
  signMany(paths: Iterable<string>, options?: { ttl?: number }): Promise<string[]>;
  verify(url: string, options?: { ip?: string }): Promise<Verdict>;
  status(): Promise<Status>;
  close(): void;
}

declare const securelink: {
  Client: typeof Client;
  SecurelinkError: typeof SecurelinkError;
  DEFAULT_SOCKET: string;
  LINE_MAX: number;
  GRANT_COOKIE: string;
};
export default securelink;
