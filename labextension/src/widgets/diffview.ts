/**
 * The diff view: what a session changed against its base, file by file, with review comments
 * on lines. Comments queue on the server and go to the agent with the next message (the send
 * box at the bottom, or any other place that sends one).
 *
 * Everything shown here (paths, patches, comments) comes from agents and users: it goes into
 * the page as text only (`h()` / `textContent`), never as markup.
 */

import type { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { CattyAPI } from '../api';
import type { IComment, IDiff } from '../types';
import { ReviewComments } from './diffcomments';
import { diffStat, drawFile } from './difffile';
import type { DiffLayout } from './diffmodel';
import { button, h, messageOf } from './dom';

/** Files drawn in full; the rest are listed by name. */
export const MAX_FILES = 100;

/** "1 file" / "N files". */
function files(n: number): string {
  return n === 1 ? '1 file' : `${n} files`;
}

/** Options of a diff view. */
export interface IDiffViewOptions {
  api: CattyAPI;
  /** The session's label. */
  label: string;
  /** This place's client id (comments and messages are sent as it). */
  client: string;
}

let nextId = 0;

/**
 * A session's changes against its base: `+added −removed` per file and in total, each file's
 * patch (unified, or side by side), and comments on lines.
 */
export class DiffView extends Widget {
  /** The session's label. */
  readonly label: string;

  constructor(options: IDiffViewOptions) {
    super();
    this._api = options.api;
    this.label = options.label;
    this._client = options.client;
    this._uid = `catty-diff-${++nextId}`;
    this.addClass('catty-DiffView');

    this._refreshButton = button('Refresh', () => void this.refresh(), {
      class: 'catty-DiffView-refresh',
      title: 'Fetch the diff and the queued comments again'
    });
    this._unifiedButton = button('Unified', () => this.setDiffLayout('unified'), {
      class: 'catty-DiffView-layoutButton',
      title: 'One column: removed lines above the added ones'
    });
    this._splitButton = button('Side by side', () => this.setDiffLayout('split'), {
      class: 'catty-DiffView-layoutButton',
      title: 'Two columns: the old file on the left, the new one on the right'
    });
    this._summary = h('div', { class: 'catty-DiffView-summary', attrs: { 'aria-live': 'polite' } });
    const header = h(
      'div',
      { class: 'catty-DiffView-header' },
      this._summary,
      h(
        'div',
        { class: 'catty-DiffView-tools' },
        h(
          'div',
          {
            class: 'catty-DiffView-layout',
            attrs: { role: 'group', 'aria-label': 'Diff layout' }
          },
          this._unifiedButton,
          this._splitButton
        ),
        this._refreshButton
      )
    );
    this._status = h('div', { class: 'catty-DiffView-status' });
    this._note = h('div', { class: 'catty-DiffView-note', attrs: { hidden: true } });
    this._nav = h('nav', {
      class: 'catty-DiffView-nav',
      attrs: { 'aria-label': 'Files changed', hidden: true }
    });
    this._files = h('div', { class: 'catty-DiffView-files' });
    this._commentsBox = h('section', {
      class: 'catty-DiffComments',
      attrs: { 'aria-label': 'Queued comments', tabindex: -1 }
    });
    this._sendText = h('textarea', {
      class: 'catty-DiffSend-text',
      attrs: {
        'aria-label': 'Message to send with the comments',
        placeholder: 'A message to send with the comments (optional)',
        rows: 2
      }
    });
    this._sendText.addEventListener('keydown', ev => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        if (!this._sendButton.disabled) {
          void this._send();
        }
      }
    });
    this._sendButton = button('Send comments', () => void this._send(), {
      class: 'catty-DiffSend-button jp-mod-accept',
      title: 'Send the queued comments to the agent, with the message (Ctrl+Enter)',
      disabled: true
    });
    this._notice = h('div', {
      class: 'catty-DiffView-notice',
      attrs: { 'aria-live': 'polite', role: 'status' }
    });
    const send = h(
      'div',
      { class: 'catty-DiffSend' },
      this._sendText,
      h('div', { class: 'catty-DiffSend-actions' }, this._sendButton, this._notice)
    );
    this._review = new ReviewComments({
      api: this._api,
      label: this.label,
      client: this._client,
      uid: this._uid,
      files: this._files,
      list: this._commentsBox,
      fallback: this._sendText,
      say: (message, error) => this._say(message, error),
      changed: () => this._showSendable()
    });
    this.node.append(
      header,
      this._status,
      this._note,
      this._nav,
      this._files,
      this._commentsBox,
      send
    );
    this._showLayout();
    this._showSummary(null);
    this._showStatus('loading');
    this._review.render();
  }

  /** Emitted after the queued comments were sent to the agent. */
  get sent(): ISignal<this, void> {
    return this._sent;
  }

  /** How the files are drawn: `unified` (one column) or `split` (side by side). */
  get diffLayout(): DiffLayout {
    return this._diffLayout;
  }

  /** The diff last fetched (null before the first fetch succeeds). */
  get diff(): IDiff | null {
    return this._diff;
  }

  /** The comments waiting for the next message. */
  get comments(): readonly IComment[] {
    return this._review.comments;
  }

  /** Draw the files unified or side by side. */
  setDiffLayout(layout: DiffLayout): void {
    if (layout === this._diffLayout) {
      return;
    }
    this._diffLayout = layout;
    this._showLayout();
    if (this._diff) {
      this._render();
    }
  }

  /** Fetch the diff and the queued comments again and redraw. */
  async refresh(): Promise<void> {
    const generation = ++this._generation;
    this._showStatus('loading');
    this._files.setAttribute('aria-busy', 'true');
    try {
      const [diff, comments] = await Promise.all([
        this._api.diff(this.label),
        this._api.comments(this.label)
      ]);
      if (generation !== this._generation || this.isDisposed) {
        return;
      }
      this._diff = diff;
      this._review.comments = comments;
      this._render();
      this._showStatus('idle');
    } catch (err) {
      if (generation !== this._generation || this.isDisposed) {
        return;
      }
      this._showStatus('error', messageOf(err));
    } finally {
      if (generation === this._generation && !this.isDisposed) {
        this._files.removeAttribute('aria-busy');
      }
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._generation++;
    this._review.dispose();
    Signal.clearData(this);
    super.dispose();
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    if (!this.node.contains(document.activeElement)) {
      (this._nav.querySelector('button') ?? this._refreshButton).focus();
    }
  }

  // ---- drawing ------------------------------------------------------------------------------

  private _showLayout(): void {
    this._unifiedButton.setAttribute('aria-pressed', String(this._diffLayout === 'unified'));
    this._splitButton.setAttribute('aria-pressed', String(this._diffLayout === 'split'));
    this._unifiedButton.classList.toggle('catty-mod-pressed', this._diffLayout === 'unified');
    this._splitButton.classList.toggle('catty-mod-pressed', this._diffLayout === 'split');
    this.node.dataset.layout = this._diffLayout;
  }

  private _showStatus(state: 'loading' | 'idle' | 'error', message = ''): void {
    this._status.replaceChildren();
    this._status.dataset.state = state;
    if (state === 'loading') {
      this._status.append(
        h('span', {
          class: 'catty-DiffView-loading',
          text: 'Loading the diff…',
          attrs: { role: 'status' }
        })
      );
    } else if (state === 'error') {
      this._status.append(
        h(
          'div',
          { class: 'catty-DiffView-error', attrs: { role: 'alert' } },
          h('span', { class: 'catty-DiffView-errorText', text: message }),
          button('Retry', () => void this.refresh(), { class: 'catty-DiffView-retry' })
        )
      );
    }
  }

  private _showSummary(diff: IDiff | null): void {
    this._summary.replaceChildren();
    if (!diff) {
      return;
    }
    const n = typeof diff.files_changed === 'number' ? diff.files_changed : diff.files.length;
    this._summary.append(
      h('span', { class: 'catty-DiffView-total', text: `${files(n)} changed, ` }),
      h('span', { class: 'catty-DiffStat-added', text: `+${diff.added}` }),
      ' ',
      h('span', { class: 'catty-DiffStat-removed', text: `−${diff.removed}` })
    );
    if (diff.base) {
      this._summary.append(
        h('span', {
          class: 'catty-DiffView-base',
          text: ` against ${diff.base.slice(0, 12)}`,
          title: diff.base
        })
      );
    }
  }

  /** Redraw everything from `_diff` and the queued comments, keeping open comment boxes' drafts. */
  private _render(): void {
    const diff = this._diff;
    if (!diff) {
      return;
    }
    const drafts = this._review.reset();

    this._showSummary(diff);
    this._note.hidden = !diff.truncated;
    this._note.textContent = diff.truncated
      ? 'Cut: the diff is too large to show whole. Some files or lines are missing.'
      : '';

    const shown = diff.files.slice(0, MAX_FILES);
    this._nav.replaceChildren();
    this._nav.hidden = shown.length === 0;
    if (shown.length) {
      this._nav.append(
        h(
          'ul',
          { class: 'catty-DiffView-navList' },
          ...shown.map((f, i) =>
            h(
              'li',
              {},
              h(
                'button',
                {
                  class: 'catty-DiffView-navItem',
                  attrs: { type: 'button', title: `Go to ${f.path}` },
                  onclick: () => this._jumpToFile(i)
                },
                h('span', { class: 'catty-DiffView-navPath', text: f.path }),
                diffStat(f)
              )
            )
          )
        )
      );
    }

    this._files.replaceChildren();
    if (!diff.files.length) {
      this._files.append(
        h('p', { class: 'catty-DiffView-empty', text: 'No changes yet: the session has not changed any file.' })
      );
    }
    const options = {
      uid: this._uid,
      layout: this._diffLayout,
      review: this._review,
      collapsed: this._collapsed,
      rawShown: this._rawShown
    };
    shown.forEach((f, i) => this._files.append(drawFile(f, i, options)));
    if (diff.files.length > MAX_FILES) {
      const rest = diff.files.slice(MAX_FILES).map(f => f.path);
      this._files.append(
        h('p', {
          class: 'catty-DiffView-more',
          text: `and ${rest.length} more: ${rest.join(', ')}`
        })
      );
    }

    this._review.render();
    this._review.restore(drafts);
  }

  // ---- sending ------------------------------------------------------------------------------

  private async _send(): Promise<void> {
    if (this._sending || !this._review.comments.length) {
      return;
    }
    this._sending = true;
    this._sendButton.disabled = true;
    const count = this._review.comments.length;
    try {
      await this._api.send(this.label, this._sendText.value, this._client);
      if (this.isDisposed) {
        return;
      }
      this._sendText.value = '';
      this._review.comments = [];
      this._say(`Sent ${count === 1 ? '1 comment' : `${count} comments`} to the agent.`);
      this._sent.emit();
      try {
        this._review.comments = await this._api.comments(this.label);
      } catch {
        // the list stays empty until the next refresh
      }
    } catch (err) {
      if (this.isDisposed) {
        return;
      }
      // A 409 says another place holds input focus, and what to do about it.
      this._say(messageOf(err), true);
    } finally {
      this._sending = false;
      if (!this.isDisposed) {
        this._review.render();
      }
    }
  }

  /** The send button: usable while comments wait and none are being sent. */
  private _showSendable(): void {
    this._sendButton.disabled = this._sending || this._review.comments.length === 0;
  }

  private _say(message: string, error = false): void {
    this._notice.textContent = message;
    this._notice.classList.toggle('catty-mod-error', error);
  }

  // ---- navigation ---------------------------------------------------------------------------

  private _jumpToFile(index: number): void {
    const details = this._files.querySelector<HTMLDetailsElement>(
      `#${this._uid}-file-${index}`
    );
    if (!details) {
      return;
    }
    details.open = true;
    const summary = details.querySelector('summary');
    details.scrollIntoView({ block: 'start' });
    summary?.focus();
  }

  private readonly _api: CattyAPI;
  private readonly _client: string;
  private readonly _uid: string;
  private readonly _sent = new Signal<this, void>(this);
  private readonly _review: ReviewComments;
  private _diffLayout: DiffLayout = 'unified';
  private _diff: IDiff | null = null;
  private _generation = 0;
  private _sending = false;
  private _collapsed = new Set<string>();
  private _rawShown = new Set<string>();
  private readonly _summary: HTMLElement;
  private readonly _refreshButton: HTMLButtonElement;
  private readonly _unifiedButton: HTMLButtonElement;
  private readonly _splitButton: HTMLButtonElement;
  private readonly _status: HTMLElement;
  private readonly _note: HTMLElement;
  private readonly _nav: HTMLElement;
  private readonly _files: HTMLElement;
  private readonly _commentsBox: HTMLElement;
  private readonly _sendText: HTMLTextAreaElement;
  private readonly _sendButton: HTMLButtonElement;
  private readonly _notice: HTMLElement;
}
