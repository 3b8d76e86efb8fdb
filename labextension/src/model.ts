/**
 * The extension's state: the session list (with what deserves the user's attention) and each
 * open session (its loaded window of the transcript, focus, pending permission requests).
 *
 * Views read the models and listen to their signals; only the models call the API.
 */

import { ISignal, Signal } from '@lumino/signaling';

import { CattyAPI, SessionHints, StreamState, TranscriptStream } from './api';
import type {
  IEvent,
  IFocus,
  IPermissionRequest,
  ISession,
  ISessionDetail
} from './types';

/** What the list shows of a session's state. */
export type Status = 'starting' | 'idle' | 'busy' | 'waiting' | 'stopped' | 'failed' | 'expired';

/** The state a session is shown in: its activity while running, else its life state. */
export function statusOf(session: Pick<ISession, 'state' | 'activity'>): Status {
  if (session.state === 'running') {
    return session.activity ?? 'idle';
  }
  return session.state;
}

/** How the list is ordered. */
export type SortKey = 'recent' | 'created' | 'label' | 'status';

/** Something a session did that the user should hear about. */
export interface IAttention {
  session: ISession;
  /** `waiting`: a permission request needs an answer; `finished`: a turn ended; `failed`. */
  kind: 'waiting' | 'finished' | 'failed';
}

const STATUS_ORDER: Record<Status, number> = {
  waiting: 0,
  busy: 1,
  starting: 2,
  idle: 3,
  failed: 4,
  stopped: 5,
  expired: 6
};

/** Options of the session list. */
export interface ISessionsModelOptions {
  /** Milliseconds between refreshes while started and no live updates arrive (0: only on
   * demand). */
  pollInterval?: number;
  /** Follow the server's session-change hints (`catty/v1/updates`) and refresh when they
   * name a change; while they are live, poll only every `livePollInterval` ms. */
  liveUpdates?: boolean;
  /** Milliseconds between refreshes while live updates arrive: a safety net. */
  livePollInterval?: number;
  /** Milliseconds hints are gathered before one refresh. */
  hintDelay?: number;
}

/** Every session of the server, filtered and sorted for the side panel. */
export class SessionsModel {
  constructor(
    readonly api: CattyAPI,
    options: ISessionsModelOptions = {}
  ) {
    this._interval = options.pollInterval ?? 3000;
    this._liveUpdates = options.liveUpdates ?? false;
    this._livePollInterval = options.livePollInterval ?? 60000;
    this._hintDelay = options.hintDelay ?? 100;
  }

  /** The list, its filter or its order changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** A session began waiting for a permission answer (or was waiting when first listed),
   * finished its turn, or failed. */
  get attention(): ISignal<this, IAttention> {
    return this._attention;
  }

  /** Every session fetched (archived ones only when `showArchived`). */
  get all(): readonly ISession[] {
    return this._sessions;
  }

  /** The sessions the panel shows: filtered, then sorted. */
  get visible(): ISession[] {
    const words = this._filter.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = this._sessions.filter(s => {
      const hay = [s.label, s.environment, s.agent, statusOf(s), s.focus?.holder ?? '', s.branch]
        .join(' ')
        .toLowerCase();
      return words.every(w => hay.includes(w));
    });
    const by: Record<SortKey, (a: ISession, b: ISession) => number> = {
      recent: (a, b) => b.last_activity - a.last_activity,
      created: (a, b) => b.created - a.created,
      label: (a, b) => a.label.localeCompare(b.label),
      status: (a, b) =>
        STATUS_ORDER[statusOf(a)] - STATUS_ORDER[statusOf(b)] || b.last_activity - a.last_activity
    };
    return shown.sort(by[this._sort]);
  }

  /** Words every shown session must contain (label, environment, agent, state, holder). */
  get filter(): string {
    return this._filter;
  }
  set filter(value: string) {
    if (value !== this._filter) {
      this._filter = value;
      this._changed.emit();
    }
  }

  /** The order of the list. */
  get sort(): SortKey {
    return this._sort;
  }
  set sort(value: SortKey) {
    if (value !== this._sort) {
      this._sort = value;
      this._changed.emit();
    }
  }

  /** Whether archived sessions are fetched and shown. */
  get showArchived(): boolean {
    return this._showArchived;
  }
  set showArchived(value: boolean) {
    if (value !== this._showArchived) {
      this._showArchived = value;
      void this.refresh();
    }
  }

  /** Why the last refresh failed, or null. */
  get error(): string | null {
    return this._error;
  }

  /** Whether the list has been fetched at least once. */
  get loaded(): boolean {
    return this._loaded;
  }

  /** A session by label, if the list has it. */
  find(label: string): ISession | undefined {
    return this._sessions.find(s => s.label === label);
  }

  /** Fetch the list again; emits `attention` for what changed since the last fetch. */
  async refresh(): Promise<void> {
    const ticket = ++this._ticket;
    try {
      const sessions = await this.api.listSessions(this._showArchived);
      if (ticket !== this._ticket) {
        return; // a newer refresh is on its way
      }
      this._error = null;
      this._update(sessions);
    } catch (err) {
      if (ticket === this._ticket) {
        this._error = (err as Error).message;
      }
    }
    this._changed.emit();
  }

  /** Refresh now, then whenever the server says a session changed (with `liveUpdates`) and
   * every `pollInterval` ms while it cannot, until disposed. */
  start(): void {
    this._started = true;
    void this.refresh();
    if (this._liveUpdates && this._hints === null) {
      this._hints = new SessionHints(this.api.transport, {
        onChanged: () => this._refreshSoon(),
        onState: state => {
          if (state === 'live') {
            void this.refresh(); // whatever changed while no hints came
          }
          this._schedule();
        }
      });
    }
    this._schedule();
  }

  /** Whether the server's change hints are arriving (the list then polls rarely). */
  get live(): boolean {
    return this._hints?.state === 'live';
  }

  /** Milliseconds between refreshes while no live updates arrive (0: only on demand). */
  get interval(): number {
    return this._interval;
  }
  set interval(value: number) {
    this._interval = Math.max(0, value);
    this._schedule();
  }

  /** Stop refreshing. */
  dispose(): void {
    this._started = false;
    this._hints?.dispose();
    this._hints = null;
    if (this._hintTimer !== null) {
      clearTimeout(this._hintTimer);
      this._hintTimer = null;
    }
    this._schedule();
    Signal.clearData(this);
  }

  /** (Re)arm the poll for the current mode. */
  private _schedule(): void {
    if (this._timer !== null) {
      clearInterval(this._timer);
      this._timer = null;
    }
    const every = this.live ? Math.max(this._interval, this._livePollInterval) : this._interval;
    if (this._started && every > 0) {
      this._timer = setInterval(() => void this.refresh(), every);
    }
  }

  private _refreshSoon(): void {
    if (this._hintTimer === null) {
      this._hintTimer = setTimeout(() => {
        this._hintTimer = null;
        void this.refresh();
      }, this._hintDelay);
    }
  }

  private _update(sessions: ISession[]): void {
    if (!this._loaded) {
      // A question already waiting when the page opens still needs an answer: say so once.
      for (const now of sessions) {
        if (statusOf(now) === 'waiting') {
          this._attention.emit({ session: now, kind: 'waiting' });
        }
      }
    } else {
      for (const now of sessions) {
        const before = this._seen.get(now.id);
        if (!before) {
          continue; // a new session: nothing happened to it that the user missed
        }
        const was = statusOf(before);
        const is = statusOf(now);
        if (is === 'waiting' && was !== 'waiting') {
          this._attention.emit({ session: now, kind: 'waiting' });
        } else if (is === 'idle' && (was === 'busy' || was === 'waiting')) {
          this._attention.emit({ session: now, kind: 'finished' });
        } else if (is === 'failed' && was !== 'failed') {
          this._attention.emit({ session: now, kind: 'failed' });
        }
      }
    }
    this._seen = new Map(sessions.map(s => [s.id, s]));
    this._sessions = sessions;
    this._loaded = true;
  }

  private _sessions: ISession[] = [];
  private _seen = new Map<string, ISession>();
  private _filter = '';
  private _sort: SortKey = 'recent';
  private _showArchived = false;
  private _error: string | null = null;
  private _loaded = false;
  private _ticket = 0;
  private _interval: number;
  private _liveUpdates: boolean;
  private _livePollInterval: number;
  private _hintDelay: number;
  private _started = false;
  private _hints: SessionHints | null = null;
  private _hintTimer: ReturnType<typeof setTimeout> | null = null;
  private _timer: ReturnType<typeof setInterval> | null = null;
  private _changed = new Signal<this, void>(this);
  private _attention = new Signal<this, IAttention>(this);
}

/** Options of one open session. */
export interface ISessionModelOptions {
  /** Events per transcript page. */
  pageSize?: number;
  /** Milliseconds a burst of state-changing events waits before the session is fetched. */
  refreshDelay?: number;
  /** First reconnect delay of the stream, in ms. */
  reconnectDelay?: number;
}

/**
 * One session as its view shows it: a window of the transcript (the newest page first, older
 * pages on request, live events appended), who holds focus, and pending permission requests.
 */
export class SessionModel {
  constructor(
    readonly api: CattyAPI,
    readonly label: string,
    /** This place's client id (one per browser tab). */
    readonly client: string,
    options: ISessionModelOptions = {}
  ) {
    this._pageSize = options.pageSize ?? 100;
    this._refreshDelay = options.refreshDelay ?? 300;
    this._reconnectDelay = options.reconnectDelay ?? 500;
  }

  /** Newer events arrived (in order). */
  get appended(): ISignal<this, IEvent[]> {
    return this._appended;
  }

  /** Older events were loaded (in order, all before what was shown). */
  get prepended(): ISignal<this, IEvent[]> {
    return this._prepended;
  }

  /** The session, its focus, its pending requests or the stream's state changed. */
  get stateChanged(): ISignal<this, void> {
    return this._stateChanged;
  }

  /** The session as last fetched, or null before `open`. */
  get session(): ISessionDetail | null {
    return this._session;
  }

  /** The loaded events, oldest first. */
  get events(): readonly IEvent[] {
    return this._events;
  }

  /** Whether the oldest event of the transcript is loaded. */
  get atStart(): boolean {
    return this._atStart;
  }

  /** Who holds input focus. */
  get focus(): IFocus | null {
    return this._focus;
  }

  /** Whether this place holds focus. */
  get hasFocus(): boolean {
    return this._focus?.holder === this.client;
  }

  /** Whether this place may send: it holds focus, or nobody does (sending then takes it). */
  get canSend(): boolean {
    return !this._focus?.holder || this.hasFocus;
  }

  /** Permission requests waiting for an answer, oldest first. */
  get pending(): IPermissionRequest[] {
    return [...this._pending.values()];
  }

  /** The live stream's state. */
  get streamState(): StreamState {
    return this._stream?.state ?? 'connecting';
  }

  /** Why the last load failed, or null. */
  get error(): string | null {
    return this._error;
  }

  /** The newest seq seen. */
  get last(): number {
    return this._last;
  }

  /** Fetch the session and the newest page of its transcript, then follow it live. */
  async open(): Promise<void> {
    const [detail, page] = await Promise.all([
      this.api.getSession(this.label),
      this.api.transcript(this.label, { tail: true, limit: this._pageSize })
    ]);
    this._setDetail(detail);
    this._atStart = page.length < this._pageSize || (page.length > 0 && page[0].seq <= 1);
    this._accept(page);
    if (this._disposed) {
      return;
    }
    this._stream = new TranscriptStream(this.api.transport, this.label, {
      after: this._last,
      client: this.client,
      delay: this._reconnectDelay,
      onEvent: event => this._accept([event]),
      onState: state => {
        if (state === 'live') {
          this._refreshSoon(); // focus or permissions may have changed while away
        }
        this._stateChanged.emit();
      }
    });
  }

  /** Load the page of events before the oldest loaded one. False when there is none. */
  async loadOlder(): Promise<boolean> {
    if (this._atStart || this._loadingOlder || this._events.length === 0) {
      return false;
    }
    this._loadingOlder = true;
    try {
      const first = this._events[0].seq;
      const page = await this.api.transcript(this.label, {
        tail: true,
        before: first,
        limit: this._pageSize
      });
      const older = page.filter(e => e.seq < first);
      this._atStart = page.length < this._pageSize || (older.length > 0 && older[0].seq <= 1);
      if (older.length) {
        this._events = [...older, ...this._events];
        this._prepended.emit(older); // the past changes nothing the session fetch did not say
      }
      return older.length > 0;
    } finally {
      this._loadingOlder = false;
    }
  }

  /** Send TEXT (and the queued review comments) to the agent. */
  async send(text: string): Promise<void> {
    await this.api.send(this.label, text, this.client);
    if (!this._focus?.holder) {
      this._focus = { holder: this.client, connected: true };
      this._stateChanged.emit();
    }
  }

  /** Take input focus here; whoever had it is told. */
  async takeControl(): Promise<void> {
    this._focus = await this.api.takeFocus(this.label, this.client);
    this._stateChanged.emit();
  }

  /** Answer a permission request. */
  async answer(requestId: string, behavior: 'allow' | 'deny'): Promise<void> {
    await this.api.answer(this.label, requestId, behavior, this.client);
    this._pending.delete(requestId);
    this._stateChanged.emit();
  }

  /** Interrupt the turn, stop the runtime, or resume it. */
  async act(action: 'interrupt' | 'stop' | 'resume'): Promise<void> {
    await this.api.act(this.label, action, this.client);
    await this.refresh();
  }

  /** Fetch the session (state, focus, pending requests) again. */
  async refresh(): Promise<void> {
    try {
      this._setDetail(await this.api.getSession(this.label));
      this._error = null;
    } catch (err) {
      this._error = (err as Error).message;
    }
    this._stateChanged.emit();
  }

  /** Reconnect the stream at once if it is waiting to. */
  wake(): void {
    this._stream?.wake();
  }

  /** Whether `dispose` ran. */
  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Stop following the session. */
  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._stream?.dispose();
    if (this._refreshTimer !== null) {
      clearTimeout(this._refreshTimer);
    }
    Signal.clearData(this);
  }

  private _accept(events: IEvent[]): void {
    const fresh = events.filter(e => e.seq > this._last);
    if (!fresh.length) {
      return;
    }
    this._last = fresh[fresh.length - 1].seq;
    this._events.push(...fresh);
    for (const event of fresh) {
      this._track(event);
    }
    this._appended.emit(fresh);
  }

  /** What a new event changes in focus, activity and pending requests. */
  private _track(event: IEvent): void {
    const p = event.payload || {};
    let changed = false;
    if (event.kind === 'status') {
      if ('focus' in p) {
        this._focus = { holder: p.focus ?? null, connected: true, expires: null };
        changed = true;
      }
      if (p.activity && this._session) {
        // An activity report means the runtime is up, whatever the last fetch said.
        this._session = { ...this._session, state: 'running', activity: p.activity };
        changed = true;
      }
    } else if (event.kind === 'permission_request' && p.request_id) {
      this._pending.set(p.request_id, p as IPermissionRequest);
      changed = true;
    } else if (event.kind === 'permission_decision' && p.request_id) {
      changed = this._pending.delete(p.request_id);
    }
    if (
      ['system', 'error', 'result'].includes(event.kind) ||
      (event.kind === 'status' && (p.ready || 'focus' in p))
    ) {
      this._refreshSoon();
    }
    if (changed) {
      this._stateChanged.emit();
    }
  }

  private _setDetail(detail: ISessionDetail): void {
    this._session = detail;
    this._focus = detail.focus ?? { holder: null };
    this._pending = new Map(
      (detail.pending_permissions ?? [])
        .filter(p => p.request_id)
        .map(p => [p.request_id, p] as [string, IPermissionRequest])
    );
  }

  // Several events in a row (a stop, a focus change) need only one look at the session.
  private _refreshSoon(): void {
    if (this._disposed) {
      return;
    }
    if (this._refreshTimer !== null) {
      clearTimeout(this._refreshTimer);
    }
    this._refreshTimer = setTimeout(() => {
      this._refreshTimer = null;
      if (!this._disposed) {
        void this.refresh();
      }
    }, this._refreshDelay);
  }

  private _session: ISessionDetail | null = null;
  private _events: IEvent[] = [];
  private _last = 0;
  private _atStart = false;
  private _loadingOlder = false;
  private _focus: IFocus | null = null;
  private _pending = new Map<string, IPermissionRequest>();
  private _stream: TranscriptStream | null = null;
  private _error: string | null = null;
  private _disposed = false;
  private _refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private _pageSize: number;
  private _refreshDelay: number;
  private _reconnectDelay: number;
  private _appended = new Signal<this, IEvent[]>(this);
  private _prepended = new Signal<this, IEvent[]>(this);
  private _stateChanged = new Signal<this, void>(this);
}
