/**
 * The diff view's review comments: the `+` button of a line, the comment box it opens, the
 * queued comments under their lines and listed at the bottom, and withdrawing one.
 *
 * Comments and lines come from agents and users: they go into the page as text only.
 */

import { CattyAPI, CattyRequestError } from '../api';
import type { IComment } from '../types';
import { IPatchLine, Side, lineKey, lineName } from './diffmodel';
import { button, clip, h, messageOf } from './dom';

/** A line that can take a comment. */
export interface ILineRecord {
  path: string;
  side: Side;
  line: number;
  content: string;
  /** The `catty-DiffLine` element (its comment button is inside). */
  row: HTMLElement;
  /** The element comment boxes and inline comments go after. */
  anchor: HTMLElement;
  /** Make the line visible when it is in a hidden part (a notebook's raw patch). */
  reveal?: () => void;
}

/** The text of a comment box not yet added, kept across a redraw. */
export interface IDraft {
  key: string;
  text: string;
  focused: boolean;
}

/** Options of the review comments of a diff view. */
export interface IReviewCommentsOptions {
  api: CattyAPI;
  /** The session's label. */
  label: string;
  /** This place's client id (comments are sent as it). */
  client: string;
  /** The view's id prefix. */
  uid: string;
  /** The drawn files, where inline comments go. */
  files: HTMLElement;
  /** The section that lists the queued comments. */
  list: HTMLElement;
  /** What gets focus when the last queued comment is withdrawn. */
  fallback: HTMLElement;
  /** Show a notice (an error when ERROR). */
  say: (message: string, error?: boolean) => void;
  /** Called each time the queued comments are drawn (the send button follows them). */
  changed: () => void;
}

/** An open comment box. */
interface IOpenBox {
  record: ILineRecord;
  box: HTMLElement;
  textarea: HTMLTextAreaElement;
  add: HTMLButtonElement;
  error: HTMLElement;
}

let nextId = 0;

/** The comments of one diff view: the lines that take them, open boxes and the queue. */
export class ReviewComments {
  /** The comments waiting for the next message. */
  comments: IComment[] = [];

  constructor(options: IReviewCommentsOptions) {
    this._options = options;
    this._api = options.api;
  }

  /** Stop: answers that arrive later change nothing. */
  dispose(): void {
    this._disposed = true;
  }

  /** Forget the lines and boxes before a redraw; the boxes' drafts come back. */
  reset(): IDraft[] {
    const drafts: IDraft[] = [];
    for (const [k, open] of this._boxes) {
      drafts.push({ key: k, text: open.textarea.value, focused: document.activeElement === open.textarea });
    }
    this._boxes.clear();
    this._records.clear();
    this._extras = new WeakMap();
    return drafts;
  }

  /** Open again the boxes of DRAFTS whose lines are still drawn. */
  restore(drafts: IDraft[]): void {
    for (const draft of drafts) {
      const record = this._records.get(draft.key);
      if (record) {
        this._openBox(record, draft.text, draft.focused);
      }
    }
  }

  /** Make RECORD, drawn for LINE, take comments. */
  register(record: ILineRecord, line: IPatchLine): void {
    this._records.set(lineKey(record.path, record.side, record.line), record);
    if (line.kind === 'ctx' && line.old !== null) {
      // A comment made elsewhere on the old side of a context line shows under it too.
      const old = lineKey(record.path, 'old', line.old);
      if (!this._records.has(old)) {
        this._records.set(old, record);
      }
    }
  }

  /** The `+` button that opens the comment box of line N on SIDE of PATH. */
  commentButton(path: string, side: Side, n: number): HTMLButtonElement {
    const node = h('button', {
      class: 'catty-DiffLine-comment',
      text: '+',
      title: side === 'old' ? `Comment on removed line ${n} (old file)` : `Comment on line ${n}`,
      attrs: { type: 'button', 'aria-label': lineName(path, side, n) }
    });
    node.addEventListener('click', () => {
      const record = this._records.get(lineKey(path, side, n));
      if (record) {
        this._openBox(record, '', true);
      }
    });
    return node;
  }

  /** The queued comments: listed at the bottom and shown under their lines. */
  render(): void {
    const comments = this.comments;
    this._options.changed();

    for (const node of Array.from(this._options.files.querySelectorAll('.catty-InlineComment'))) {
      node.remove();
    }
    for (const c of comments) {
      const record = this._records.get(lineKey(c.path, c.side, c.line));
      if (record) {
        this._extrasOf(record.anchor).comments.append(
          h(
            'div',
            {
              class: 'catty-InlineComment',
              attrs: { 'data-id': c.id, 'data-path': c.path, 'data-side': c.side, 'data-line': c.line }
            },
            h('span', { class: 'catty-InlineComment-mark', text: '✎ ', attrs: { 'aria-hidden': 'true' } }),
            h('span', { class: 'catty-InlineComment-label', text: 'Queued comment: ' }),
            h('span', { class: 'catty-InlineComment-text', text: c.text })
          )
        );
      }
    }

    const box = this._options.list;
    box.replaceChildren();
    box.append(h('h3', { class: 'catty-DiffComments-title', text: 'Review comments' }));
    if (!comments.length) {
      box.append(
        h('p', {
          class: 'catty-DiffComments-empty',
          text: 'No comments queued. Choose + beside a line to comment on it.'
        })
      );
      return;
    }
    box.append(
      h(
        'p',
        { class: 'catty-DiffComments-count' },
        h('b', { text: comments.length === 1 ? '1 comment' : `${comments.length} comments` }),
        ' will go to the agent with the next message.'
      )
    );
    const list = h('ul', { class: 'catty-DiffComments-list' });
    comments.forEach((c, index) => list.append(this._listItem(c, index)));
    box.append(list);
  }

  /** The queued comment C, the INDEX-th, as the list at the bottom shows it. */
  private _listItem(c: IComment, index: number): HTMLElement {
    const whereId = `${this._options.uid}-comment-${++nextId}`;
    const place = `${c.path}:${c.line}${c.side === 'old' ? ' (old)' : ''}`;
    const record = this._records.get(lineKey(c.path, c.side, c.line));
    const where = record
      ? h('button', {
          class: 'catty-DiffComment-where',
          text: place,
          title: 'Go to the line',
          attrs: { type: 'button', id: whereId },
          onclick: () => this._jumpToLine(record)
        })
      : h('span', { class: 'catty-DiffComment-where', text: place, attrs: { id: whereId } });
    const withdraw = button('Withdraw', () => void this._withdraw(c, withdraw, index), {
      class: 'catty-DiffComment-withdraw',
      title: 'Take this comment back: it will not be sent'
    });
    withdraw.setAttribute('aria-describedby', whereId);
    return h(
      'li',
      { class: 'catty-DiffComment', attrs: { 'data-id': c.id } },
      h(
        'div',
        { class: 'catty-DiffComment-head' },
        where,
        c.line_text !== null && c.line_text !== undefined
          ? h('code', { class: 'catty-DiffComment-line', text: clip(c.line_text, 200) })
          : null,
        withdraw
      ),
      h('div', { class: 'catty-DiffComment-text', text: c.text })
    );
  }

  /** The container under ANCHOR that holds its inline comments and comment boxes. */
  private _extrasOf(anchor: HTMLElement): { comments: HTMLElement; boxes: HTMLElement } {
    let extras = this._extras.get(anchor);
    if (!extras) {
      const comments = h('div', { class: 'catty-DiffLineExtras-comments' });
      const boxes = h('div', { class: 'catty-DiffLineExtras-boxes' });
      anchor.after(h('div', { class: 'catty-DiffLineExtras' }, comments, boxes));
      extras = { comments, boxes };
      this._extras.set(anchor, extras);
    }
    return extras;
  }

  private _openBox(record: ILineRecord, draft: string, focus: boolean): void {
    const k = lineKey(record.path, record.side, record.line);
    const existing = this._boxes.get(k);
    if (existing) {
      existing.textarea.focus();
      return;
    }
    const errorId = `${this._options.uid}-box-${++nextId}`;
    const textarea = h('textarea', {
      class: 'catty-CommentBox-text',
      attrs: {
        'aria-label': 'Comment',
        'aria-describedby': errorId,
        placeholder: 'Your comment (Ctrl+Enter adds it)',
        rows: 3
      }
    });
    textarea.value = draft;
    const error = h('div', { class: 'catty-CommentBox-error', attrs: { id: errorId, role: 'alert' } });
    const add = button('Add comment', () => void this._addComment(k), {
      class: 'catty-CommentBox-add jp-mod-accept'
    });
    const cancel = button('Cancel', () => this._closeBox(k, true), { class: 'catty-CommentBox-cancel' });
    const where = h(
      'div',
      { class: 'catty-CommentBox-where' },
      'Comment on ',
      h('b', { text: record.path }),
      ` line ${record.line}${record.side === 'old' ? ' (old)' : ''}: `,
      h('code', { text: clip(record.content, 200) })
    );
    const box = h(
      'div',
      {
        class: 'catty-CommentBox',
        attrs: {
          role: 'group',
          'aria-label': lineName(record.path, record.side, record.line),
          'data-path': record.path,
          'data-side': record.side,
          'data-line': record.line
        }
      },
      where,
      textarea,
      h('div', { class: 'catty-CommentBox-actions' }, add, cancel, error)
    );
    textarea.addEventListener('keydown', ev => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        ev.stopPropagation();
        void this._addComment(k);
      } else if (ev.key === 'Escape') {
        ev.preventDefault();
        ev.stopPropagation();
        this._closeBox(k, true);
      }
    });
    this._extrasOf(record.anchor).boxes.append(box);
    this._boxes.set(k, { record, box, textarea, add, error });
    if (focus) {
      record.reveal?.();
      textarea.focus();
    }
  }

  private _closeBox(k: string, restoreFocus: boolean): void {
    const open = this._boxes.get(k);
    if (!open) {
      return;
    }
    this._boxes.delete(k);
    open.box.remove();
    if (restoreFocus) {
      open.record.row.querySelector<HTMLButtonElement>('.catty-DiffLine-comment')?.focus();
    }
  }

  private async _addComment(k: string): Promise<void> {
    const open = this._boxes.get(k);
    if (!open || open.add.disabled) {
      return;
    }
    const { record, textarea, error, add } = open;
    const text = textarea.value;
    if (!text.trim()) {
      error.textContent = 'Write a comment first.';
      textarea.setAttribute('aria-invalid', 'true');
      textarea.focus();
      return;
    }
    error.textContent = '';
    textarea.removeAttribute('aria-invalid');
    add.disabled = true;
    try {
      const comment = await this._api.addComment(this._options.label, {
        path: record.path,
        line: record.line,
        side: record.side,
        text,
        client: this._options.client
      });
      if (this._disposed) {
        return;
      }
      // The box may have been redrawn meanwhile: close whichever stands for this line now.
      this._closeBox(k, true);
      this.comments = [...this.comments.filter(c => c.id !== comment.id), comment];
      this.render();
      this._options.say('Comment added: it goes to the agent with the next message.');
    } catch (err) {
      const current = this._boxes.get(k) ?? open;
      current.error.textContent = messageOf(err);
      current.textarea.setAttribute('aria-invalid', 'true');
    } finally {
      const current = this._boxes.get(k);
      if (current) {
        current.add.disabled = false;
      }
      add.disabled = false;
    }
  }

  private async _withdraw(c: IComment, node: HTMLButtonElement, index: number): Promise<void> {
    node.disabled = true;
    try {
      await this._api.withdrawComment(this._options.label, c.id);
    } catch (err) {
      if (this._disposed) {
        return;
      }
      if (!(err instanceof CattyRequestError && err.status === 404)) {
        node.disabled = false;
        this._options.say(messageOf(err), true);
        return;
      }
      // Already gone (sent or withdrawn elsewhere): show what the server has.
    }
    if (this._disposed) {
      return;
    }
    this.comments = this.comments.filter(x => x.id !== c.id);
    this.render();
    this._options.say('Comment withdrawn.');
    const buttons = this._options.list.querySelectorAll<HTMLButtonElement>('.catty-DiffComment-withdraw');
    (buttons[Math.min(index, buttons.length - 1)] ?? this._options.fallback).focus();
  }

  private _jumpToLine(record: ILineRecord): void {
    const details = record.row.closest('details');
    if (details) {
      details.open = true;
    }
    record.reveal?.();
    record.row.scrollIntoView({ block: 'center' });
    record.row.querySelector<HTMLButtonElement>('.catty-DiffLine-comment')?.focus();
  }

  private readonly _options: IReviewCommentsOptions;
  private readonly _api: CattyAPI;
  private _disposed = false;
  private _records = new Map<string, ILineRecord>();
  private _boxes = new Map<string, IOpenBox>();
  private _extras = new WeakMap<HTMLElement, { comments: HTMLElement; boxes: HTMLElement }>();
}
