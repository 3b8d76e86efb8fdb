/**
 * This browser tab's client id. Focus is held by a client, so each tab is its own place: the
 * id lives in sessionStorage (a reload keeps it, another tab or browser gets its own).
 */

const KEY = 'catty.lab.client';

/** The tab's client id, made on first use. */
export function clientId(storage: Pick<Storage, 'getItem' | 'setItem'> | null = safeStorage()): string {
  const saved = storage?.getItem(KEY);
  if (saved && /^[\w.-]{1,64}$/.test(saved)) {
    return saved;
  }
  const bytes = new Uint8Array(3);
  crypto.getRandomValues(bytes);
  const id = `lab-${Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('')}`;
  storage?.setItem(KEY, id);
  return id;
}

function safeStorage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: a fresh id per page load
  }
}
