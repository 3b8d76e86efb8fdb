/**
 * The stream helper: live events in order, and after a dropped socket a reconnect that asks
 * for what came after the last delivered event, delivering nothing twice.
 */

import { StreamState, TranscriptStream } from '../api';
import type { IEvent } from '../types';
import { FakeServer, events, until, useFakeServer } from './fakeserver';

let server: FakeServer;
useFakeServer(started => (server = started));

test('reconnects with after=<last seq> and never delivers an event twice', async () => {
  const seen: IEvent[] = [];
  const states: StreamState[] = [];
  server.onStream = conn => {
    if (server.streams.length === 1) {
      // The first connection delivers 1..3, then the network drops.
      for (const e of events(1, 3)) {
        conn.socket.send(JSON.stringify(e));
      }
      setTimeout(() => conn.socket.terminate(), 50);
    } else {
      // The server replays from a little earlier than asked (2, 3 again), then goes on.
      for (const e of events(2, 6)) {
        conn.socket.send(JSON.stringify(e));
      }
    }
  };
  const stream = new TranscriptStream(server.transport(), 'fix-tests', {
    after: 0,
    client: 'lab-test',
    delay: 20,
    onEvent: e => seen.push(e),
    onState: s => states.push(s)
  });
  try {
    await until(() => seen.length >= 6);
    await new Promise(resolve => setTimeout(resolve, 100)); // anything extra would show now
    expect(seen.map(e => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(server.streams.map(s => s.after)).toEqual([0, 3]);
    expect(server.streams.every(s => s.client === 'lab-test' && s.label === 'fix-tests')).toBe(true);
    expect(states).toEqual(['live', 'reconnecting', 'live']);
    expect(stream.last).toBe(6);
  } finally {
    stream.dispose();
  }
});

test('starts after the seq it is given and ignores anything at or before it', async () => {
  const seen: number[] = [];
  server.onStream = conn => {
    for (const e of events(8, 12)) {
      conn.socket.send(JSON.stringify(e));
    }
  };
  const stream = new TranscriptStream(server.transport(), 's', {
    after: 10,
    client: 'c',
    onEvent: e => seen.push(e.seq)
  });
  try {
    await until(() => seen.length >= 2);
    expect(server.streams[0].after).toBe(10);
    expect(seen).toEqual([11, 12]);
  } finally {
    stream.dispose();
  }
});

test('a disposed stream does not reconnect', async () => {
  const stream = new TranscriptStream(server.transport(), 's', {
    after: 0,
    client: 'c',
    delay: 10,
    onEvent: () => undefined
  });
  await until(() => server.streams.length === 1 && stream.state === 'live');
  stream.dispose();
  await new Promise(resolve => setTimeout(resolve, 150));
  expect(server.streams.length).toBe(1);
  expect(stream.state).toBe('closed');
});

test('malformed messages are skipped, the stream goes on', async () => {
  const seen: number[] = [];
  server.onStream = conn => {
    conn.socket.send('not json');
    conn.socket.send(JSON.stringify({ hello: 'no seq' }));
    conn.socket.send(JSON.stringify(events(1, 1)[0]));
  };
  const stream = new TranscriptStream(server.transport(), 's', {
    after: 0,
    client: 'c',
    onEvent: e => seen.push(e.seq)
  });
  try {
    await until(() => seen.length === 1);
    expect(seen).toEqual([1]);
  } finally {
    stream.dispose();
  }
});
