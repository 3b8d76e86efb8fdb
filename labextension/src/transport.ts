/**
 * The browser's transport: JupyterLab's ServerConnection, so the base URL, token and XSRF
 * cookie are handled as for every other JupyterLab request (also under JupyterHub).
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { ISocket, ITransport } from './api';

/** Requests to `{baseUrl}catty/v1/` through ServerConnection. */
export class ServerTransport implements ITransport {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** Fetch PATH under `catty/v1/`. */
  fetch(path: string, init: RequestInit): Promise<Response> {
    return ServerConnection.makeRequest(this.url(path), init, this.settings);
  }

  /** Open a WebSocket to PATH under `catty/v1/` (the token rides along when there is one). */
  socket(path: string): ISocket {
    let url = URLExt.join(this.settings.wsUrl, 'catty/v1', path);
    const token = this.settings.token;
    if (token && this.settings.appendToken) {
      url += `${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    }
    return new this.settings.WebSocket(url) as unknown as ISocket;
  }

  /** The full URL of PATH under `catty/v1/`. */
  url(path: string): string {
    return URLExt.join(this.settings.baseUrl, 'catty/v1', path);
  }
}
