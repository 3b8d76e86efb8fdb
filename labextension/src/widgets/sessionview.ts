/**
 * One session in the main area: its live transcript (newest first on screen, older pages on
 * scroll), who holds focus, the send box, permission answers and the session's actions.
 */

import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { SessionModel, statusOf } from '../model';
import type { IEvent, IPermissionRequest } from '../types';
import { button, clip, h, messageOf, summary } from './dom';
import { EventRenderer } from './events';

/** Pixels from an edge that count as being at it. */
const NEAR = 150;

/** What the view asks of the application. */
export interface ISessionViewActions {
  /** Open the session's diff tab. */
  openDiff(label: string): void;
  /** Help the user teleport the session into their checkout. */
  teleport(label: string): void;
}

/** Options of a session view. */
export interface ISessionViewOptions {
  model: SessionModel;
  rendermime: IRenderMimeRegistry | null;
  actions: ISessionViewActions;
}

/** A session's transcript and controls. */
export class SessionView extends Widget {
  constructor(options: ISessionViewOptions) {
    super();
    this.model = options.model;
    this._actions = options.actions;
    this._renderer = new EventRenderer(options.rendermime, this.model.client);
    this.addClass('catty-SessionView');

    const label = this.model.label;
    this._status = h('span', { class: 'catty-Status', text: '…' });
    this._meta = h('span', { class: 'catty-SessionView-meta' });
    this._conn = h('span', { class: 'catty-Conn', text: 'connecting…', attrs: { role: 'status' } });
    this._focusText = h('span', { class: 'catty-Focus-text' });
    this._take = button('Take control', () => this._run(() => this.model.takeControl()), {
      class: 'catty-TakeControl jp-mod-accept',
      title: 'Hold input focus here: send messages and answer permission requests'
    });
    this._interrupt = button('Interrupt', () => this._run(() => this.model.act('interrupt')), {
      title: "Interrupt the agent's turn"
    });
    this._stop = button('Stop', () => this._run(() => this.model.act('stop')), {
      title: 'Stop the runtime; the workspace and transcript stay'
    });
    this._resume = button('Resume', () => this._run(() => this.model.act('resume')), {
      title: 'Start the runtime again with the conversation restored'
    });
    const diff = button('Diff', () => this._actions.openDiff(label), {
      title: 'Review the changes, with comments on lines'
    });
    const teleport = button('Teleport', () => this._actions.teleport(label), {
      title: "Bring the session's branch and conversation into your checkout"
    });
    const download = h('a', {
      class: 'jp-Button catty-Button',
      text: 'Download',
      title: 'Download the workspace and transcript',
      attrs: { href: this.model.api.downloadUrl(label), download: `${label}.tar.gz` }
    });
    this._pending = h('section', {
      class: 'catty-Pending',
      attrs: { 'aria-label': 'Permission requests', hidden: true }
    });
    this._older = h('div', { class: 'catty-Older', text: 'Loading…' });
    this._list = h('div', {
      class: 'catty-Transcript',
      attrs: { role: 'log', 'aria-label': `Transcript of ${label}`, 'aria-live': 'polite', tabindex: 0 }
    }, this._older);
    this._jump = button('↓ Newest', () => this._toBottom(), { class: 'catty-Jump' });
    this._jump.hidden = true;
    this._text = h('textarea', {
      class: 'catty-Composer-text',
      attrs: { rows: 2, 'aria-label': 'Message to the agent', placeholder: 'Message the agent…' }
    });
    this._send = button('Send', () => void this._sendText(), {
      class: 'catty-Send jp-mod-accept',
      title: 'Send (Enter; Shift+Enter for a new line)'
    });
    this._notice = h('div', { class: 'catty-Notice', attrs: { role: 'alert', hidden: true } });

    this.node.append(
      h(
        'header',
        { class: 'catty-SessionView-header' },
        h('h2', { class: 'catty-SessionView-title', text: label }),
        this._status,
        this._meta,
        this._conn
      ),
      h(
        'div',
        { class: 'catty-SessionView-toolbar', attrs: { role: 'toolbar', 'aria-label': 'Session actions' } },
        this._interrupt,
        this._stop,
        this._resume,
        diff,
        teleport,
        download
      ),
      h('div', { class: 'catty-Focus' }, this._focusText, this._take),
      this._pending,
      h('div', { class: 'catty-Transcript-wrap' }, this._list, this._jump),
      this._notice,
      h(
        'form',
        { class: 'catty-Composer', attrs: { 'aria-label': 'Send a message' } },
        this._text,
        this._send
      )
    );

    this._text.addEventListener('keydown', ev => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        void this._sendText();
      }
    });
    this._list.addEventListener('scroll', () => this._onScroll(), { passive: true });
    this.model.appended.connect((_, events) => this._append(events), this);
    this.model.prepended.connect((_, events) => this._prepend(events), this);
    this.model.stateChanged.connect(() => this._showState(), this);
    this._showState();
  }

  /** The session this view shows. */
  readonly model: SessionModel;

  /** Load the newest events and follow the session. */
  async open(): Promise<void> {
    try {
      await this.model.open();
      this._toBottom();
      this._showStart();
      this._fill();
    } catch (err) {
      this._older.textContent = '';
      this._say(`The session could not be opened: ${messageOf(err)}`);
    }
  }

  /** Stop following the session. */
  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.dispose();
    super.dispose();
  }

  protected onAfterShow(): void {
    this.model.wake();
  }

  protected onActivateRequest(): void {
    (this.model.canSend ? this._text : this._take).focus();
  }

  private _append(events: IEvent[]): void {
    const stick = this._nearBottom();
    const frag = document.createDocumentFragment();
    for (const event of events) {
      const node = this._renderer.render(event);
      if (node) {
        frag.append(node);
      }
    }
    this._list.append(frag);
    if (stick) {
      this._toBottom();
    } else {
      this._jump.hidden = false;
    }
  }

  private _prepend(events: IEvent[]): void {
    const list = this._list;
    const fromBottom = list.scrollHeight - list.scrollTop;
    const frag = document.createDocumentFragment();
    for (const event of events) {
      const node = this._renderer.render(event);
      if (node) {
        frag.append(node);
      }
    }
    this._older.after(frag);
    list.scrollTop = list.scrollHeight - fromBottom; // keep what the reader looks at in place
  }

  private _onScroll(): void {
    if (this._nearBottom()) {
      this._jump.hidden = true;
    }
    this._fill();
  }

  /** Load older pages while the top of the transcript is in view. */
  private _fill(): void {
    if (this._loading || this.model.atStart || this._list.scrollTop > NEAR) {
      return;
    }
    this._loading = true;
    this._older.textContent = 'Loading older events…';
    this.model
      .loadOlder()
      .then(more => {
        this._loading = false;
        this._showStart();
        if (more) {
          requestAnimationFrame(() => this._fill());
        }
      })
      .catch(err => {
        this._loading = false;
        this._older.textContent = 'Scroll up to try again';
        this._say(`Older events could not be loaded: ${messageOf(err)}`);
      });
  }

  private _showStart(): void {
    this._older.textContent = this.model.atStart
      ? 'Beginning of the transcript'
      : 'Scroll up for older events';
  }

  private _nearBottom(): boolean {
    const l = this._list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < NEAR;
  }

  private _toBottom(): void {
    this._list.scrollTop = this._list.scrollHeight;
    this._jump.hidden = true;
  }

  private async _sendText(): Promise<void> {
    const text = this._text.value;
    if (!text.trim() || !this.model.canSend) {
      return;
    }
    this._send.disabled = true;
    try {
      await this.model.send(text);
      this._text.value = '';
      this._say('');
    } catch (err) {
      this._say(messageOf(err)); // a 409 names who holds focus and says what to do
    } finally {
      this._showState();
    }
  }

  private async _run(action: () => Promise<void>): Promise<void> {
    try {
      await action();
      this._say('');
    } catch (err) {
      this._say(messageOf(err));
    }
  }

  private _say(message: string): void {
    this._notice.textContent = message;
    this._notice.hidden = !message;
  }

  private _showState(): void {
    const m = this.model;
    const s = m.session;
    if (s) {
      const status = statusOf(s);
      this._status.textContent = status;
      this._status.dataset.status = status;
      this._meta.textContent = [s.agent, s.environment, s.branch].filter(Boolean).join(' · ');
      const live = s.state === 'running' || s.state === 'starting';
      this._interrupt.disabled = !(s.state === 'running' && s.activity !== 'idle');
      this._stop.disabled = !live;
      this._resume.disabled = live;
      this.title.label = s.label;
      this.title.caption = `${s.label}: ${status}`;
    }
    this._conn.textContent = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', closed: 'closed' }[m.streamState];
    this._conn.dataset.conn = m.streamState;

    // Input focus means something only while a runtime serves the session.
    const ended = s !== null && s.state !== 'running' && s.state !== 'starting';
    const holder = m.focus?.holder ?? null;
    const focusClass = ended ? 'nobody' : m.hasFocus ? 'me' : holder ? 'other' : 'nobody';
    this.node.dataset.focus = focusClass;
    this._focusText.textContent = ended
      ? `This session is ${s.state}: Resume starts a fresh runtime with its conversation.`
      : m.hasFocus
        ? 'You have control here.'
        : holder
          ? `${holder} has control${m.focus?.connected === false ? ' (away)' : ''}; you are watching.`
          : 'Nobody has control; sending a message takes it.';
    this._take.hidden = ended || m.hasFocus;
    const canSend = !ended && m.canSend;
    this._text.disabled = !canSend;
    this._send.disabled = !canSend;
    this._text.placeholder = ended
      ? 'Resume the session to send messages'
      : canSend
        ? 'Message the agent… (Enter sends)'
        : 'Take control to send messages and answer permission requests';
    this._showPending(m.pending, m.hasFocus || !holder);
  }

  // Cards are kept, not redrawn, so a refresh does not undo a click still on its way.
  private _showPending(pending: IPermissionRequest[], mayAnswer: boolean): void {
    const ids = new Set(pending.map(p => p.request_id));
    for (const [id, card] of this._cards) {
      if (!ids.has(id)) {
        card.remove();
        this._cards.delete(id);
      }
    }
    for (const p of pending) {
      let card = this._cards.get(p.request_id);
      if (!card) {
        card = this._card(p);
        this._cards.set(p.request_id, card);
        this._pending.append(card);
      }
      for (const b of card.querySelectorAll('button')) {
        (b as HTMLButtonElement).disabled = !mayAnswer || card.dataset.busy === '1';
      }
    }
    this._pending.hidden = pending.length === 0;
  }

  private _card(p: IPermissionRequest): HTMLElement {
    const tool = String(p.tool_name || 'a tool');
    const card = h('div', {
      class: 'catty-Ask',
      attrs: { role: 'group', 'aria-label': `Permission request: ${tool}` }
    });
    const answer = (behavior: 'allow' | 'deny') => {
      card.dataset.busy = '1';
      this._showState();
      this.model
        .answer(p.request_id, behavior)
        .then(() => this._say(''))
        .catch(err => {
          card.dataset.busy = '0';
          this._say(messageOf(err));
          this._showState();
        });
    };
    card.append(
      h('strong', { text: `Allow ${tool}?` }),
      h('code', { text: clip(summary(p.input), 400) }),
      h(
        'div',
        { class: 'catty-Ask-buttons' },
        button('Deny', () => answer('deny'), { class: 'catty-Deny jp-mod-reject' }),
        button('Approve', () => answer('allow'), { class: 'catty-Approve jp-mod-accept' })
      )
    );
    return card;
  }

  private _actions: ISessionViewActions;
  private _renderer: EventRenderer;
  private _status: HTMLElement;
  private _meta: HTMLElement;
  private _conn: HTMLElement;
  private _focusText: HTMLElement;
  private _take: HTMLButtonElement;
  private _interrupt: HTMLButtonElement;
  private _stop: HTMLButtonElement;
  private _resume: HTMLButtonElement;
  private _pending: HTMLElement;
  private _older: HTMLElement;
  private _list: HTMLElement;
  private _jump: HTMLButtonElement;
  private _text: HTMLTextAreaElement;
  private _send: HTMLButtonElement;
  private _notice: HTMLElement;
  private _loading = false;
  private _cards = new Map<string, HTMLElement>();
}
