/**
 * A small stand-in for the catty server, on 127.0.0.1 with real HTTP and real WebSockets, for
 * unit tests of the model and the stream helper. (The browser tests in tests/lab/ run the
 * real server; here the point is to script what the server says, drops and replays.)
 */

import * as http from 'http';
import type { AddressInfo } from 'net';
import WebSocket, { WebSocketServer } from 'ws';

import { CattyAPI, ISocket, ITransport } from '../api';
import type { IEvent } from '../types';

/** A route's answer: status and JSON body. */
export type Reply = { status?: number; body: unknown };

/** One WebSocket the client opened. */
export interface IStreamConnection {
  label: string;
  after: number;
  client: string;
  socket: WebSocket;
}

/** The fake server. */
export class FakeServer {
  /** Answers by `METHOD path?query` (exact) or `METHOD path` (any query). */
  routes = new Map<string, (url: URL, body: any) => Reply>();
  /** Every request seen, as `METHOD path?query`. */
  requests: string[] = [];
  /** Every stream connection, in order. */
  streams: IStreamConnection[] = [];
  /** Called for each new stream connection. */
  onStream: (conn: IStreamConnection) => void = () => undefined;
  /** Open `updates` sockets (session-change hints). */
  hintSockets: WebSocket[] = [];
  /** Whether `updates` connections are taken (false: refused, as a server without them). */
  acceptHints = true;

  private _http = http.createServer((req, res) => this._handle(req, res));
  private _ws = new WebSocketServer({ noServer: true });

  /** Listen on a free port of 127.0.0.1. */
  async start(): Promise<void> {
    this._http.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (url.pathname === '/catty/v1/updates') {
        if (!this.acceptHints) {
          socket.destroy();
          return;
        }
        this._ws.handleUpgrade(req, socket, head, ws => this.hintSockets.push(ws));
        return;
      }
      const m = /^\/catty\/v1\/sessions\/([^/]+)\/stream$/.exec(url.pathname);
      if (!m) {
        socket.destroy();
        return;
      }
      this._ws.handleUpgrade(req, socket, head, ws => {
        const conn = {
          label: decodeURIComponent(m[1]),
          after: Number(url.searchParams.get('after')),
          client: url.searchParams.get('client') ?? '',
          socket: ws
        };
        this.streams.push(conn);
        this.onStream(conn);
      });
    });
    await new Promise<void>(resolve => this._http.listen(0, '127.0.0.1', resolve));
  }

  /** The port listened on. */
  get port(): number {
    return (this._http.address() as AddressInfo).port;
  }

  /** A transport to this server (node's fetch, the `ws` package's WebSocket). */
  transport(): ITransport {
    const base = `http://127.0.0.1:${this.port}/catty/v1/`;
    return {
      fetch: (path, init) => fetch(base + path, init),
      socket: path => new WebSocket(`ws://127.0.0.1:${this.port}/catty/v1/${path}`) as unknown as ISocket,
      url: path => base + path
    };
  }

  /** An API client of this server. */
  api(): CattyAPI {
    return new CattyAPI(this.transport());
  }

  /** Tell every `updates` socket that these sessions changed. */
  hint(ids: string[]): void {
    for (const ws of this.hintSockets) {
      ws.send(JSON.stringify({ changed: ids }));
    }
  }

  /** Drop every `updates` socket, and refuse new ones. */
  dropHints(): void {
    this.acceptHints = false;
    for (const ws of this.hintSockets.splice(0)) {
      ws.terminate();
    }
  }

  /** Close every socket and stop listening. */
  async stop(): Promise<void> {
    for (const s of this.streams) {
      s.socket.terminate();
    }
    for (const ws of this.hintSockets) {
      ws.terminate();
    }
    this._ws.close();
    await new Promise<void>(resolve => this._http.close(() => resolve()));
  }

  private _handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    let raw = '';
    req.on('data', chunk => (raw += chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const path = url.pathname.replace(/^\/catty\/v1\//, '');
      const key = `${req.method} ${path}${url.search}`;
      this.requests.push(key);
      const route = this.routes.get(key) ?? this.routes.get(`${req.method} ${path}`);
      const reply: Reply = route
        ? route(url, raw ? JSON.parse(raw) : null)
        : { status: 404, body: { message: `no route ${key}`, reason: 'not_found' } };
      res.writeHead(reply.status ?? 200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(reply.body));
    });
  }
}

/** Transcript events with seqs FROM..TO (inclusive). */
export function events(from: number, to: number, kind = 'assistant'): IEvent[] {
  const out: IEvent[] = [];
  for (let seq = from; seq <= to; seq++) {
    out.push({ seq, kind, payload: { text: `event ${seq}` }, ts: 1700000000 + seq, client: null });
  }
  return out;
}

/** Wait until CHECK holds (polling), or fail after MS. */
export async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) {
      throw new Error('timed out waiting for a condition');
    }
    await new Promise(resolve => setTimeout(resolve, 10));
  }
}

/** Start a fresh FakeServer before each test of the calling file (handed to TAKE), and stop
 * it after. */
export function useFakeServer(take: (server: FakeServer) => void): void {
  let current: FakeServer;
  beforeEach(async () => {
    current = new FakeServer();
    await current.start();
    take(current);
  });
  afterEach(async () => {
    await current.stop();
  });
}
