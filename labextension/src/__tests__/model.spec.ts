/**
 * The models: the session list (filter, order, what deserves a notification) and one open
 * session (newest page first, older pages, live events, focus and permission requests).
 */

import { CattyRequestError } from '../api';
import { IAttention, SessionModel, SessionsModel, statusOf } from '../model';
import type { ISession } from '../types';
import { FakeServer, events, until, useFakeServer } from './fakeserver';

let server: FakeServer;
useFakeServer(started => (server = started));

function session(label: string, more: Partial<ISession> = {}): ISession {
  return {
    id: `id-${label}`,
    label,
    owner: 'me',
    agent: 'claude',
    environment: 'default',
    state: 'running',
    activity: 'idle',
    created: 1000,
    last_activity: 1000,
    branch: `catty/${label}`,
    base_commit: null,
    source: null,
    archived: false,
    error: null,
    sandboxed: true,
    diffstat: null,
    focus: { holder: null },
    ...more
  };
}

describe('SessionsModel', () => {
  test('filters by words and sorts', async () => {
    server.routes.set('GET sessions', () => ({
      body: {
        sessions: [
          session('alpha', { last_activity: 10, created: 3, environment: 'web' }),
          session('beta', { last_activity: 30, created: 1, activity: 'waiting' }),
          session('gamma', { last_activity: 20, created: 2, state: 'stopped', activity: null })
        ]
      }
    }));
    const model = new SessionsModel(server.api(), { pollInterval: 0 });
    await model.refresh();
    expect(model.visible.map(s => s.label)).toEqual(['beta', 'gamma', 'alpha']);
    model.sort = 'label';
    expect(model.visible.map(s => s.label)).toEqual(['alpha', 'beta', 'gamma']);
    model.sort = 'created';
    expect(model.visible.map(s => s.label)).toEqual(['alpha', 'gamma', 'beta']);
    model.sort = 'status';
    expect(model.visible.map(s => s.label)).toEqual(['beta', 'alpha', 'gamma']);
    model.filter = 'WEB';
    expect(model.visible.map(s => s.label)).toEqual(['alpha']);
    model.filter = 'stopped';
    expect(model.visible.map(s => s.label)).toEqual(['gamma']);
    model.filter = 'beta waiting';
    expect(model.visible.map(s => s.label)).toEqual(['beta']);
    model.filter = 'beta stopped';
    expect(model.visible).toEqual([]);
  });

  test('with live updates it refreshes on a hint, hardly polls, and polls again without them', async () => {
    let listed = [session('alpha')];
    server.routes.set('GET sessions', () => ({ body: { sessions: listed } }));
    const lists = () => server.requests.filter(r => r === 'GET sessions').length;
    const model = new SessionsModel(server.api(), {
      pollInterval: 100,
      liveUpdates: true,
      livePollInterval: 60000,
      hintDelay: 100
    });
    model.start();
    await until(() => model.live && server.hintSockets.length === 1);
    await until(() => model.find('alpha') !== undefined);
    await new Promise(resolve => setTimeout(resolve, 100)); // the refresh on going live
    const settled = lists();
    await new Promise(resolve => setTimeout(resolve, 500));
    expect(lists()).toBe(settled); // live: no poll every 100 ms

    listed = [...listed, session('beta')];
    server.hint(['id-beta', 'id-alpha']);
    server.hint(['id-beta']);
    await until(() => model.find('beta') !== undefined, 1000);
    await new Promise(resolve => setTimeout(resolve, 250));
    expect(lists()).toBe(settled + 1); // two hints close together: one look

    server.dropHints(); // a server without live updates, or one that went away
    listed = [...listed, session('gamma')];
    await until(() => model.find('gamma') !== undefined, 2000); // found by polling
    expect(model.live).toBe(false);
    const polling = lists();
    await new Promise(resolve => setTimeout(resolve, 450));
    expect(lists()).toBeGreaterThanOrEqual(polling + 2);
    model.dispose();
  });

  test('archived sessions are asked for only on request', async () => {
    server.routes.set('GET sessions', () => ({ body: { sessions: [session('a')] } }));
    server.routes.set('GET sessions?all=1', () => ({
      body: { sessions: [session('a'), session('old', { archived: true })] }
    }));
    const model = new SessionsModel(server.api(), { pollInterval: 0 });
    await model.refresh();
    expect(model.all.map(s => s.label)).toEqual(['a']);
    const changed = new Promise<void>(resolve => model.changed.connect(() => resolve()));
    model.showArchived = true;
    await changed;
    expect(model.all.map(s => s.label)).toEqual(['a', 'old']);
    expect(server.requests).toContain('GET sessions?all=1');
  });

  test('tells when a session starts waiting, finishes its turn or fails', async () => {
    let list = [session('a', { activity: 'busy' }), session('b', { activity: 'busy' }), session('c', { activity: 'waiting' })];
    server.routes.set('GET sessions', () => ({ body: { sessions: list } }));
    const model = new SessionsModel(server.api(), { pollInterval: 0 });
    const heard: string[] = [];
    model.attention.connect((_, a: IAttention) => heard.push(`${a.session.label}:${a.kind}`));
    await model.refresh();
    // First look: only a question already waiting is news; a and b being busy is not.
    expect(heard).toEqual(['c:waiting']);
    list = [
      session('a', { activity: 'waiting' }),
      session('b', { activity: 'idle' }),
      session('c', { activity: 'waiting' }),
      session('d', { activity: 'idle' }) // new: nothing to tell
    ];
    await model.refresh();
    expect(heard).toEqual(['c:waiting', 'a:waiting', 'b:finished']); // c: still the same question
    list = [session('a', { activity: 'idle' }), session('b', { state: 'failed', activity: null })];
    await model.refresh();
    expect(heard).toEqual(['c:waiting', 'a:waiting', 'b:finished', 'a:finished', 'b:failed']);
  });

  test('a failed refresh keeps the list and says why', async () => {
    let fail = false;
    server.routes.set('GET sessions', () =>
      fail ? { status: 403, body: { message: 'no', reason: '' } } : { body: { sessions: [session('a')] } }
    );
    const model = new SessionsModel(server.api(), { pollInterval: 0 });
    await model.refresh();
    fail = true;
    await model.refresh();
    expect(model.all.map(s => s.label)).toEqual(['a']);
    expect(model.error).toMatch(/logged out or not allowed/);
  });

  test('statusOf shows the activity of a running session, else its state', () => {
    expect(statusOf({ state: 'running', activity: 'busy' })).toBe('busy');
    expect(statusOf({ state: 'running', activity: null })).toBe('idle');
    expect(statusOf({ state: 'stopped', activity: null })).toBe('stopped');
  });
});

describe('SessionModel', () => {
  const all = events(1, 250);

  function serve(label: string, focus: string | null = null): void {
    server.routes.set(`GET sessions/${label}`, () => ({
      body: { ...session(label), focus: { holder: focus }, pending_permissions: [] }
    }));
    server.routes.set(`GET sessions/${label}/transcript`, url => {
      const limit = Number(url.searchParams.get('limit'));
      const before = Number(url.searchParams.get('before') || Infinity);
      const older = all.filter(e => e.seq < before);
      return { body: { events: older.slice(Math.max(0, older.length - limit)) } };
    });
  }

  test('shows the newest page first, loads older pages, then follows live', async () => {
    serve('s');
    server.onStream = conn => {
      for (const e of events(conn.after + 1, 252)) {
        conn.socket.send(JSON.stringify(e));
      }
    };
    const model = new SessionModel(server.api(), 's', 'lab-me', { pageSize: 100 });
    const appended: number[][] = [];
    model.appended.connect((_, evs) => appended.push(evs.map(e => e.seq)));
    try {
      await model.open();
      expect(model.events[0].seq).toBe(151); // the newest page: 151..250 (and live ones after)
      expect(model.atStart).toBe(false);
      await until(() => model.last === 252);
      expect(server.streams[0].after).toBe(250);
      expect(server.streams[0].client).toBe('lab-me');
      expect(await model.loadOlder()).toBe(true);
      expect(model.events[0].seq).toBe(51);
      expect(await model.loadOlder()).toBe(true);
      expect(model.atStart).toBe(true);
      expect(await model.loadOlder()).toBe(false);
      expect(model.events.map(e => e.seq)).toEqual(events(1, 252).map(e => e.seq));
      expect(appended.flat()).toEqual(events(151, 252).map(e => e.seq));
    } finally {
      model.dispose();
    }
  });

  test('focus: only the holder (or anyone while nobody holds it) may send', async () => {
    serve('f', 'phone-1');
    let socket: any = null;
    server.onStream = conn => (socket = conn.socket);
    server.routes.set('POST sessions/f/focus', (_, body) => ({
      body: { holder: body.client, connected: true }
    }));
    const model = new SessionModel(server.api(), 'f', 'lab-me', { refreshDelay: 10000 });
    try {
      await model.open();
      expect(model.hasFocus).toBe(false);
      expect(model.canSend).toBe(false);
      await model.takeControl();
      expect(model.hasFocus).toBe(true);
      expect(model.canSend).toBe(true);
      await until(() => socket !== null);
      // Another place takes control: the transcript says so, and this place loses it.
      socket.send(JSON.stringify({ seq: 251, kind: 'status', ts: 0, client: 'phone-1',
        payload: { focus: 'phone-1', previous: 'lab-me', message: 'phone-1 took control from lab-me' } }));
      await until(() => !model.hasFocus);
      expect(model.focus?.holder).toBe('phone-1');
      expect(model.canSend).toBe(false);
    } finally {
      model.dispose();
    }
  });

  test('permission requests come and go with the transcript; answering sends behavior and client', async () => {
    serve('p');
    let socket: any = null;
    server.onStream = conn => (socket = conn.socket);
    const answers: any[] = [];
    server.routes.set('POST sessions/p/permissions/r1', (_, body) => {
      answers.push(body);
      return { body: { ok: true } };
    });
    const model = new SessionModel(server.api(), 'p', 'lab-me', { refreshDelay: 10000 });
    try {
      await model.open();
      await until(() => socket !== null);
      socket.send(JSON.stringify({ seq: 251, kind: 'permission_request', ts: 0, client: null,
        payload: { request_id: 'r1', tool_name: 'Bash', input: { command: 'rm -rf build' } } }));
      socket.send(JSON.stringify({ seq: 252, kind: 'permission_request', ts: 0, client: null,
        payload: { request_id: 'r2', tool_name: 'Write', input: {} } }));
      await until(() => model.pending.length === 2);
      await model.answer('r1', 'allow');
      expect(answers).toEqual([{ behavior: 'allow', message: '', client: 'lab-me' }]);
      expect(model.pending.map(p => p.request_id)).toEqual(['r2']);
      socket.send(JSON.stringify({ seq: 253, kind: 'permission_decision', ts: 0, client: 'phone',
        payload: { request_id: 'r2', behavior: 'deny' } }));
      await until(() => model.pending.length === 0);
    } finally {
      model.dispose();
    }
  });

  test('a refused message carries the server message and reason', async () => {
    serve('m', 'phone-1');
    server.routes.set('POST sessions/m/messages', () => ({
      status: 409,
      body: { message: 'phone-1 has input focus; take control first', reason: 'focus_held' }
    }));
    const model = new SessionModel(server.api(), 'm', 'lab-me');
    try {
      await model.open();
      const err = await model.send('hello').catch(e => e);
      expect(err).toBeInstanceOf(CattyRequestError);
      expect(err.status).toBe(409);
      expect(err.reason).toBe('focus_held');
      expect(err.message).toMatch(/take control first/);
    } finally {
      model.dispose();
    }
  });
});
