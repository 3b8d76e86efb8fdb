/**
 * The one way the extension talks to the catty server: REST calls under `catty/v1/` and the
 * live transcript stream over a WebSocket.
 *
 * Nothing here imports JupyterLab: a `Transport` carries the requests, so the same code runs in
 * the browser (through JupyterLab's ServerConnection, see `transport.ts`) and under jest.
 */

import type {
  IAgent,
  IComment,
  IDiff,
  IEnvironment,
  IEvent,
  IFocus,
  ISession,
  ISessionDetail,
  ITeleportInfo
} from './types';

/** A minimal WebSocket: the browser's and the `ws` package's both fit. */
export interface ISocket {
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  close(): void;
}

/** How requests reach the server. */
export interface ITransport {
  /** Fetch PATH (relative to `catty/v1/`) with INIT. */
  fetch(path: string, init: RequestInit): Promise<Response>;
  /** Open a WebSocket to PATH (relative to `catty/v1/`). */
  socket(path: string): ISocket;
  /** The full URL of PATH (relative to `catty/v1/`), for links such as downloads. */
  url(path: string): string;
}

/** A request the server refused, or one that never reached it. */
export class CattyRequestError extends Error {
  /** The HTTP status (0: the server could not be reached). */
  readonly status: number;
  /** The server's machine-readable reason, such as `focus_held`. */
  readonly reason: string;
  /** The field of a request body the server names as wrong, if any. */
  readonly field: string | null;
  /** The line of that field, for multi-line fields such as `.env` text. */
  readonly line: number | null;

  constructor(
    message: string,
    status: number,
    reason = '',
    field: string | null = null,
    line: number | null = null
  ) {
    super(message);
    this.name = 'CattyRequestError';
    this.status = status;
    this.reason = reason;
    this.field = field;
    this.line = line;
  }
}

/** Where a page of the transcript starts. */
export interface ITranscriptQuery {
  /** Events after this seq (oldest first). */
  after?: number;
  /** With `tail`: events before this seq. */
  before?: number;
  /** The newest events instead of the oldest. */
  tail?: boolean;
  limit?: number;
}

/** What a new session is made from. */
export interface INewSession {
  prompt: string;
  environment?: string;
  agent?: string;
  /** A git repository on the server (absolute, or relative to the server's root folder). */
  repo?: string | null;
  client?: string;
}

const enc = encodeURIComponent;

/** The catty REST API. */
export class CattyAPI {
  constructor(readonly transport: ITransport) {}

  /** Send a request; the parsed JSON reply, or a CattyRequestError saying what went wrong. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: Response;
    try {
      response = await this.transport.fetch(path, init);
    } catch (err) {
      throw new CattyRequestError(
        'The Jupyter server cannot be reached. Check that it is running, then try again.',
        0,
        'unreachable'
      );
    }
    const text = await response.text();
    let data: any = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      let message = (data && data.message) || `${response.status} ${response.statusText}`;
      if (response.status === 403 && !(data && data.reason)) {
        message = 'You are logged out or not allowed to do this. Reload the page and log in.';
      }
      throw new CattyRequestError(
        message,
        response.status,
        (data && data.reason) || '',
        (data && typeof data.field === 'string' && data.field) || null,
        (data && typeof data.line === 'number' && data.line) || null
      );
    }
    return data as T;
  }

  /** Every session, newest first (`all`: archived ones too). */
  async listSessions(all = false): Promise<ISession[]> {
    const reply = await this.request<{ sessions: ISession[] }>(
      'GET',
      `sessions${all ? '?all=1' : ''}`
    );
    return reply.sessions;
  }

  /** One session with its focus and pending permission requests. */
  getSession(label: string): Promise<ISessionDetail> {
    return this.request('GET', `sessions/${enc(label)}`);
  }

  /** Start a session. */
  createSession(spec: INewSession): Promise<ISession> {
    return this.request('POST', 'sessions', spec);
  }

  /** Archive or bring back a session. */
  setArchived(label: string, archived: boolean): Promise<ISession> {
    return this.request('PATCH', `sessions/${enc(label)}`, { archived });
  }

  /** Send a message (with the queued review comments) to the agent. */
  send(label: string, text: string, client: string): Promise<unknown> {
    return this.request('POST', `sessions/${enc(label)}/messages`, { text, client });
  }

  /** Interrupt the agent's turn, stop the runtime, or resume it. */
  act(label: string, action: 'interrupt' | 'stop' | 'resume', client: string): Promise<unknown> {
    return this.request('POST', `sessions/${enc(label)}/${action}`, { client });
  }

  /** Take input focus for CLIENT. */
  takeFocus(label: string, client: string): Promise<IFocus> {
    return this.request('POST', `sessions/${enc(label)}/focus`, { client });
  }

  /** Answer a permission request. */
  answer(
    label: string,
    requestId: string,
    behavior: 'allow' | 'deny',
    client: string,
    message = ''
  ): Promise<unknown> {
    return this.request('POST', `sessions/${enc(label)}/permissions/${enc(requestId)}`, {
      behavior,
      message,
      client
    });
  }

  /** A page of the transcript. */
  async transcript(label: string, query: ITranscriptQuery): Promise<IEvent[]> {
    const params = new URLSearchParams();
    if (query.tail) {
      params.set('tail', '1');
    }
    if (query.after !== undefined) {
      params.set('after', String(query.after));
    }
    if (query.before !== undefined) {
      params.set('before', String(query.before));
    }
    if (query.limit !== undefined) {
      params.set('limit', String(query.limit));
    }
    const reply = await this.request<{ events: IEvent[] }>(
      'GET',
      `sessions/${enc(label)}/transcript?${params}`
    );
    return reply.events;
  }

  /** The session's changes against its base. */
  diff(label: string): Promise<IDiff> {
    return this.request('GET', `sessions/${enc(label)}/diff`);
  }

  /** The review comments waiting for the next message. */
  async comments(label: string): Promise<IComment[]> {
    const reply = await this.request<{ comments: IComment[] }>(
      'GET',
      `sessions/${enc(label)}/comments`
    );
    return reply.comments;
  }

  /** Queue a comment on a line of the diff. */
  addComment(
    label: string,
    comment: { path: string; line: number; side: 'new' | 'old'; text: string; client: string }
  ): Promise<IComment> {
    return this.request('POST', `sessions/${enc(label)}/comments`, comment);
  }

  /** Withdraw a queued comment. */
  async withdrawComment(label: string, id: string): Promise<void> {
    await this.request('DELETE', `sessions/${enc(label)}/comments/${enc(id)}`);
  }

  /** What teleporting the session needs: its branch, base and origin. */
  teleportInfo(label: string): Promise<ITeleportInfo> {
    return this.request('GET', `sessions/${enc(label)}/teleport`);
  }

  /** The link that downloads the session (workspace and transcript). */
  downloadUrl(label: string): string {
    return this.transport.url(`sessions/${enc(label)}/download`);
  }

  /** The agents this server can run. */
  async agents(): Promise<IAgent[]> {
    const reply = await this.request<{ agents: IAgent[] }>('GET', 'agents');
    return reply.agents;
  }

  /** Every environment, `default` first. */
  async environments(): Promise<IEnvironment[]> {
    const reply = await this.request<{ environments: IEnvironment[] }>('GET', 'environments');
    return reply.environments;
  }

  /** One environment (secret values masked). */
  environment(name: string): Promise<IEnvironment> {
    return this.request('GET', `environments/${enc(name)}`);
  }

  /** Create an environment. */
  createEnvironment(body: Partial<IEnvironment> & { name: string }): Promise<IEnvironment> {
    return this.request('POST', 'environments', body);
  }

  /** Change an environment's fields. */
  updateEnvironment(name: string, body: Partial<IEnvironment>): Promise<IEnvironment> {
    return this.request('PATCH', `environments/${enc(name)}`, body);
  }
}

/** How a socket is doing. */
export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'closed';

/** How a socket reconnects, and who hears of its state. */
export interface IReconnectOptions {
  /** The connection's state changed. */
  onState?: (state: StreamState) => void;
  /** The first reconnect delay in ms (doubled each failure, at most `maxDelay`). */
  delay?: number;
  maxDelay?: number;
}

/** Options of a transcript stream. */
export interface IStreamOptions extends IReconnectOptions {
  /** Deliver events after this seq. */
  after: number;
  /** This place's client id: the server counts it present while the stream is open. */
  client: string;
  /** Each new event, in order, exactly once. */
  onEvent: (event: IEvent) => void;
}

/**
 * A WebSocket of JSON messages that reconnects, with a growing delay, whenever it drops, until
 * it is disposed. Subclasses say where to connect and what to do with a message.
 */
abstract class ReconnectingSocket {
  private _socket: ISocket | null = null;
  private _retries = 0;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _state: StreamState = 'connecting';
  private _disposed = false;

  constructor(
    private readonly _transport: ITransport,
    private readonly _reconnect: IReconnectOptions
  ) {}

  /** The connection's state. */
  get state(): StreamState {
    return this._state;
  }

  /** Reconnect now instead of waiting out the backoff (a tab came back into view). */
  wake(): void {
    if (!this._disposed && this._socket === null) {
      this._connect();
    }
  }

  /** Close for good. */
  dispose(): void {
    this._disposed = true;
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    const socket = this._socket;
    this._socket = null;
    socket?.close();
    this._setState('closed');
  }

  /** Where to connect (relative to `catty/v1/`), asked again on every reconnect. */
  protected abstract path(): string;

  /** One message, parsed. */
  protected abstract receive(message: any): void;

  /** Connect for the first time (subclasses call this once their own state is set). */
  protected _connect(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    const socket = this._transport.socket(this.path());
    this._socket = socket;
    socket.onopen = () => {
      if (this._socket === socket) {
        this._setState('live');
      }
    };
    socket.onmessage = msg => {
      if (this._socket !== socket) {
        return;
      }
      this._retries = 0; // only a socket that delivers counts as healthy
      let message: any;
      try {
        message = JSON.parse(String(msg.data));
      } catch {
        return;
      }
      this.receive(message);
    };
    socket.onerror = () => undefined; // onclose follows and reconnects
    socket.onclose = () => {
      if (this._socket !== socket || this._disposed) {
        return;
      }
      this._socket = null;
      const first = this._reconnect.delay ?? 500;
      const delay =
        Math.min(this._reconnect.maxDelay ?? 15000, first * 2 ** this._retries) *
        (0.75 + Math.random() / 2);
      this._retries = Math.min(this._retries + 1, 10);
      this._setState('reconnecting');
      this._timer = setTimeout(() => this._connect(), delay);
    };
  }

  private _setState(state: StreamState): void {
    if (state !== this._state) {
      this._state = state;
      this._reconnect.onState?.(state);
    }
  }
}

/**
 * A session's live transcript: replay after a seq, then follow. When the socket drops it
 * reconnects after the newest event it delivered, so nothing is missed and nothing comes twice.
 */
export class TranscriptStream extends ReconnectingSocket {
  private _last: number;

  constructor(
    transport: ITransport,
    private readonly _label: string,
    private readonly _options: IStreamOptions
  ) {
    super(transport, _options);
    this._last = _options.after;
    this._connect();
  }

  /** The newest seq delivered. */
  get last(): number {
    return this._last;
  }

  protected path(): string {
    return (
      `sessions/${enc(this._label)}/stream?after=${this._last}` +
      `&client=${enc(this._options.client)}`
    );
  }

  protected receive(event: IEvent): void {
    if (typeof event?.seq !== 'number' || event.seq <= this._last) {
      return; // replayed after a reconnect: already delivered
    }
    this._last = event.seq;
    this._options.onEvent(event);
  }
}

/** Options of the session-change hints. */
export interface IHintsOptions extends IReconnectOptions {
  /** Ids of sessions whose listing may have changed. */
  onChanged: (ids: string[]) => void;
}

/**
 * Which sessions changed, as they change (`catty/v1/updates`): hints to fetch the list again,
 * so a list need not poll while this is live. Nothing is replayed after a reconnect: a list
 * should fetch itself again once the state is back to `live`.
 */
export class SessionHints extends ReconnectingSocket {
  constructor(
    transport: ITransport,
    private readonly _options: IHintsOptions
  ) {
    super(transport, _options);
    this._connect();
  }

  protected path(): string {
    return 'updates';
  }

  protected receive(message: { changed?: unknown }): void {
    const ids = Array.isArray(message?.changed) ? message.changed : [];
    if (ids.length) {
      this._options.onChanged(ids.map(String));
    }
  }
}
