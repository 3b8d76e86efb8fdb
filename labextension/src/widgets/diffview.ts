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

import { CattyAPI, CattyRequestError } from '../api';
import type { IComment, IDiff, IFileDiff } from '../types';
import { button, clip, h, messageOf } from './dom';

/** Files drawn in full; the rest are listed by name. */
export const MAX_FILES = 100;

/** Lines of one file's patch drawn (and offered for comments); longer ones are cut. */
export const MAX_LINES = 3000;

/** Which side of a diff a comment points at. */
export type Side = 'new' | 'old';

/** How the files are drawn. */
export type DiffLayout = 'unified' | 'split';

/** One line of a unified diff, with the file lines it stands for (as `core/comments.py`). */
export interface IPatchLine {
  /** The line as the patch has it, with its `+`/`-`/` ` prefix. */
  text: string;
  /** Its number in the old file (removed and context lines). */
  old: number | null;
  /** Its number in the new file (added and context lines). */
  new: number | null;
  kind: 'hunk' | 'add' | 'del' | 'ctx' | 'meta';
}

/** One row of the side-by-side layout. */
export interface ISplitRow {
  /** A hunk header or a note (`\ No newline at end of file`) across both columns. */
  full?: IPatchLine;
  left?: IPatchLine | null;
  right?: IPatchLine | null;
}

const HUNK = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/;
// Every line break Python's str.splitlines() knows, so line numbers match the server's.
// eslint-disable-next-line no-control-regex
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

/** TEXT split into lines as Python's `str.splitlines()` does. */
export function splitLines(text: string): string[] {
  if (!text) {
    return [];
  }
  const lines = text.split(LINE_BREAK);
  if (lines[lines.length - 1] === '') {
    lines.pop();
  }
  return lines;
}

/** The lines of a unified diff, each with the file lines it stands for. */
export function patchLines(patch: string): IPatchLine[] {
  const lines: IPatchLine[] = [];
  let oldN = 0;
  let newN = 0;
  let inHunk = false;
  for (const text of splitLines(patch)) {
    const match = HUNK.exec(text);
    if (match) {
      oldN = Number(match[1]);
      newN = Number(match[2]);
      inHunk = true;
      lines.push({ text, old: null, new: null, kind: 'hunk' });
    } else if (inHunk && text.startsWith('+')) {
      lines.push({ text, old: null, new: newN++, kind: 'add' });
    } else if (inHunk && text.startsWith('-')) {
      lines.push({ text, old: oldN++, new: null, kind: 'del' });
    } else if (inHunk && text.startsWith(' ')) {
      lines.push({ text, old: oldN++, new: newN++, kind: 'ctx' });
    } else {
      lines.push({ text, old: null, new: null, kind: 'meta' });
    }
  }
  return lines;
}

/** Where a comment on LINE points: "new" for added and context lines, "old" for removed ones. */
export function sideOf(line: IPatchLine): Side | null {
  return line.new !== null ? 'new' : line.old !== null ? 'old' : null;
}

/** The line number on `sideOf(LINE)`. */
export function numberOf(line: IPatchLine): number | null {
  return line.new !== null ? line.new : line.old;
}

/** The line of the file itself: without the diff's prefix and a trailing `\r`. */
export function contentOf(line: IPatchLine): string {
  const text = sideOf(line) ? line.text.slice(1) : line.text;
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}

/** LINES laid out in two columns: removed lines beside the added lines that replace them. */
export function splitRows(lines: IPatchLine[]): ISplitRow[] {
  const rows: ISplitRow[] = [];
  let dels: IPatchLine[] = [];
  let adds: IPatchLine[] = [];
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i++) {
      rows.push({ left: dels[i] ?? null, right: adds[i] ?? null });
    }
    dels = [];
    adds = [];
  };
  for (const line of lines) {
    if (line.kind === 'del') {
      if (adds.length) {
        flush();
      }
      dels.push(line);
    } else if (line.kind === 'add') {
      adds.push(line);
    } else {
      flush();
      rows.push(line.kind === 'ctx' ? { left: line, right: line } : { full: line });
    }
  }
  flush();
  return rows;
}

/** "1 file" / "N files". */
function files(n: number): string {
  return n === 1 ? '1 file' : `${n} files`;
}

/**
 * The accessible name of the comment button of a line: `Comment on line N of PATH` for added
 * and context lines, `Comment on old line N of PATH` for removed ones (a hunk often has both a
 * removed and an added line N).
 */
export function lineName(path: string, side: Side, line: number): string {
  return side === 'old' ? `Comment on old line ${line} of ${path}` : `Comment on line ${line} of ${path}`;
}

function key(path: string, side: Side, line: number): string {
  return `${side}:${line}:${path}`;
}

/** Options of a diff view. */
export interface IDiffViewOptions {
  api: CattyAPI;
  /** The session's label. */
  label: string;
  /** This place's client id (comments and messages are sent as it). */
  client: string;
}

/** A line that can take a comment. */
interface ILineRecord {
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

/** An open comment box. */
interface IOpenBox {
  record: ILineRecord;
  box: HTMLElement;
  textarea: HTMLTextAreaElement;
  add: HTMLButtonElement;
  error: HTMLElement;
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
    this._renderComments();
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
    return this._comments;
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
      this._comments = comments;
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

  /** Redraw everything from `_diff` and `_comments`, keeping open comment boxes' drafts. */
  private _render(): void {
    const diff = this._diff;
    if (!diff) {
      return;
    }
    const drafts: { key: string; text: string; focused: boolean }[] = [];
    for (const [k, open] of this._boxes) {
      drafts.push({ key: k, text: open.textarea.value, focused: document.activeElement === open.textarea });
    }
    this._boxes.clear();
    this._records.clear();
    this._extras = new WeakMap();

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
                this._stat(f)
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
    shown.forEach((f, i) => this._files.append(this._file(f, i)));
    if (diff.files.length > MAX_FILES) {
      const rest = diff.files.slice(MAX_FILES).map(f => f.path);
      this._files.append(
        h('p', {
          class: 'catty-DiffView-more',
          text: `and ${rest.length} more: ${rest.join(', ')}`
        })
      );
    }

    this._renderComments();
    for (const draft of drafts) {
      const record = this._records.get(draft.key);
      if (record) {
        this._openBox(record, draft.text, draft.focused);
      }
    }
  }

  private _stat(f: IFileDiff): HTMLElement {
    if (f.binary) {
      return h('span', { class: 'catty-DiffStat', text: 'binary' });
    }
    return h(
      'span',
      { class: 'catty-DiffStat' },
      h('span', { class: 'catty-DiffStat-added', text: `+${f.added}` }),
      ' ',
      h('span', { class: 'catty-DiffStat-removed', text: `−${f.removed}` })
    );
  }

  /** One file: a collapsible section, its summary the path, status and stat. */
  private _file(f: IFileDiff, index: number): HTMLElement {
    const path = f.path;
    const name = h('span', { class: 'catty-DiffFile-path' });
    if (f.old_path && f.old_path !== f.path) {
      name.append(
        h('span', { class: 'catty-DiffFile-oldPath', text: f.old_path }),
        ' → ',
        h('span', { text: f.path })
      );
    } else {
      name.textContent = f.path;
    }
    const summary = h(
      'summary',
      { class: 'catty-DiffFile-summary' },
      name,
      h('span', {
        class: 'catty-DiffFile-status',
        text: f.status,
        attrs: { 'data-status': f.status }
      }),
      this._stat(f)
    );
    const details = h(
      'details',
      {
        class: 'catty-DiffFile',
        attrs: { id: `${this._uid}-file-${index}`, 'data-path': path }
      },
      summary
    );
    details.open = !this._collapsed.has(path);
    details.addEventListener('toggle', () => {
      if (details.open) {
        this._collapsed.delete(path);
      } else {
        this._collapsed.add(path);
      }
    });

    const body = h('div', { class: 'catty-DiffFile-body' });
    details.append(body);
    if (f.binary) {
      body.append(h('p', { class: 'catty-DiffFile-note', text: 'Binary file: not shown.' }));
    } else if (f.notebook_diff) {
      body.append(
        h('h4', { class: 'catty-DiffFile-heading', text: 'Notebook diff' }),
        h('pre', { class: 'catty-NotebookDiff', text: f.notebook_diff })
      );
      if (f.patch) {
        const rawId = `${this._uid}-raw-${index}`;
        const raw = h('div', { class: 'catty-DiffFile-raw', attrs: { id: rawId } });
        const toggle = h('button', {
          class: 'jp-Button catty-Button catty-DiffFile-rawToggle',
          attrs: { type: 'button', 'aria-controls': rawId }
        });
        const show = (on: boolean) => {
          raw.hidden = !on;
          toggle.textContent = on ? 'Hide the raw patch' : 'Show the raw patch';
          toggle.setAttribute('aria-expanded', String(on));
          if (on) {
            this._rawShown.add(path);
          } else {
            this._rawShown.delete(path);
          }
        };
        toggle.addEventListener('click', () => show(raw.hidden));
        body.append(toggle, raw);
        this._patch(raw, path, f.patch, () => show(true));
        show(this._rawShown.has(path));
      }
    } else {
      this._patch(body, path, f.patch || '');
    }
    return details;
  }

  /** The patch of PATH drawn into HOST in the current layout. */
  private _patch(host: HTMLElement, path: string, patch: string, reveal?: () => void): void {
    const all = patchLines(patch);
    // git's header lines (diff --git, index, ---/+++) say nothing the summary does not.
    const first = all.findIndex(l => l.kind === 'hunk');
    let lines = first >= 0 ? all.slice(first) : all;
    if (!lines.length) {
      host.append(h('p', { class: 'catty-DiffFile-note', text: 'No changes to the content.' }));
      return;
    }
    const cut = Math.max(0, lines.length - MAX_LINES);
    lines = lines.slice(0, MAX_LINES);
    const inner = h('div', { class: 'catty-DiffLines-inner' });
    const table = h(
      'div',
      { class: `catty-DiffLines catty-DiffLines--${this._diffLayout}` },
      inner
    );
    if (this._diffLayout === 'unified') {
      for (const line of lines) {
        inner.append(this._unifiedRow(path, line, reveal));
      }
    } else {
      for (const row of splitRows(lines)) {
        inner.append(this._splitRow(path, row, reveal));
      }
    }
    host.append(table);
    if (cut) {
      host.append(
        h('p', {
          class: 'catty-DiffFile-note',
          text: `Cut: ${cut} more ${cut === 1 ? 'line' : 'lines'} of this file's diff not shown.`
        })
      );
    }
  }

  private _fullRow(line: IPatchLine): HTMLElement {
    return h('div', {
      class: line.kind === 'hunk' ? 'catty-DiffHunk' : 'catty-DiffMeta',
      text: line.text
    });
  }

  private _unifiedRow(path: string, line: IPatchLine, reveal?: () => void): HTMLElement {
    const side = sideOf(line);
    const n = numberOf(line);
    if (side === null || n === null) {
      return this._fullRow(line);
    }
    const row = this._lineElement(path, line, side, n, 'catty-DiffLine');
    row.append(
      h('span', { class: 'catty-DiffLine-num catty-DiffLine-oldNum', text: line.old }),
      h('span', { class: 'catty-DiffLine-num catty-DiffLine-newNum', text: line.new }),
      this._commentButton(path, side, n),
      h('span', { class: 'catty-DiffLine-sign', text: line.text[0], attrs: { 'aria-hidden': 'true' } }),
      h('span', { class: 'catty-DiffLine-text', text: contentOf(line) })
    );
    this._register({ path, side, line: n, content: contentOf(line), row, anchor: row, reveal }, line);
    return row;
  }

  private _splitRow(path: string, split: ISplitRow, reveal?: () => void): HTMLElement {
    if (split.full) {
      return this._fullRow(split.full);
    }
    const row = h('div', { class: 'catty-DiffSplitRow' });
    const cell = (line: IPatchLine | null | undefined, column: 'old' | 'new'): HTMLElement => {
      if (!line) {
        return h('div', { class: 'catty-DiffCell catty-DiffCell--empty' });
      }
      const num = column === 'old' ? line.old : line.new;
      const sign = line.kind === 'ctx' ? ' ' : line.text[0];
      if (line.kind === 'ctx' && column === 'old') {
        // The old half of a context line: comments on it go to its new half.
        return h(
          'div',
          { class: 'catty-DiffCell catty-DiffCell--ctx' },
          h('span', { class: 'catty-DiffLine-num', text: num }),
          h('span', { class: 'catty-DiffLine-spacer' }),
          h('span', { class: 'catty-DiffLine-sign', text: sign, attrs: { 'aria-hidden': 'true' } }),
          h('span', { class: 'catty-DiffLine-text', text: contentOf(line) })
        );
      }
      const side = sideOf(line)!;
      const n = numberOf(line)!;
      const el = this._lineElement(path, line, side, n, 'catty-DiffCell catty-DiffLine');
      el.append(
        h('span', { class: 'catty-DiffLine-num', text: num }),
        this._commentButton(path, side, n),
        h('span', { class: 'catty-DiffLine-sign', text: sign, attrs: { 'aria-hidden': 'true' } }),
        h('span', { class: 'catty-DiffLine-text', text: contentOf(line) })
      );
      this._register({ path, side, line: n, content: contentOf(line), row: el, anchor: row, reveal }, line);
      return el;
    };
    row.append(cell(split.left, 'old'), cell(split.right, 'new'));
    return row;
  }

  private _lineElement(
    path: string,
    line: IPatchLine,
    side: Side,
    n: number,
    classes: string
  ): HTMLElement {
    return h('div', {
      class: `${classes} catty-DiffLine--${line.kind}`,
      attrs: {
        'data-path': path,
        'data-side': side,
        'data-line': n,
        'data-old': line.old,
        'data-new': line.new
      }
    });
  }

  private _register(record: ILineRecord, line: IPatchLine): void {
    this._records.set(key(record.path, record.side, record.line), record);
    if (line.kind === 'ctx' && line.old !== null) {
      // A comment made elsewhere on the old side of a context line shows under it too.
      const old = key(record.path, 'old', line.old);
      if (!this._records.has(old)) {
        this._records.set(old, record);
      }
    }
  }

  private _commentButton(path: string, side: Side, n: number): HTMLButtonElement {
    const node = h('button', {
      class: 'catty-DiffLine-comment',
      text: '+',
      title: side === 'old' ? `Comment on removed line ${n} (old file)` : `Comment on line ${n}`,
      attrs: { type: 'button', 'aria-label': lineName(path, side, n) }
    });
    node.addEventListener('click', () => {
      const record = this._records.get(key(path, side, n));
      if (record) {
        this._openBox(record, '', true);
      }
    });
    return node;
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

  // ---- comments -----------------------------------------------------------------------------

  private _openBox(record: ILineRecord, draft: string, focus: boolean): void {
    const k = key(record.path, record.side, record.line);
    const existing = this._boxes.get(k);
    if (existing) {
      existing.textarea.focus();
      return;
    }
    const errorId = `${this._uid}-box-${++nextId}`;
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
      const comment = await this._api.addComment(this.label, {
        path: record.path,
        line: record.line,
        side: record.side,
        text,
        client: this._client
      });
      if (this.isDisposed) {
        return;
      }
      // The box may have been redrawn meanwhile: close whichever stands for this line now.
      this._closeBox(k, true);
      this._comments = [...this._comments.filter(c => c.id !== comment.id), comment];
      this._renderComments();
      this._say('Comment added: it goes to the agent with the next message.');
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

  /** The queued comments: listed at the bottom and shown under their lines. */
  private _renderComments(): void {
    const comments = this._comments;
    this._sendButton.disabled = this._sending || comments.length === 0;

    for (const node of Array.from(this._files.querySelectorAll('.catty-InlineComment'))) {
      node.remove();
    }
    for (const c of comments) {
      const record = this._records.get(key(c.path, c.side, c.line));
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

    this._commentsBox.replaceChildren();
    this._commentsBox.append(h('h3', { class: 'catty-DiffComments-title', text: 'Review comments' }));
    if (!comments.length) {
      this._commentsBox.append(
        h('p', {
          class: 'catty-DiffComments-empty',
          text: 'No comments queued. Choose + beside a line to comment on it.'
        })
      );
      return;
    }
    this._commentsBox.append(
      h(
        'p',
        { class: 'catty-DiffComments-count' },
        h('b', { text: comments.length === 1 ? '1 comment' : `${comments.length} comments` }),
        ' will go to the agent with the next message.'
      )
    );
    const list = h('ul', { class: 'catty-DiffComments-list' });
    comments.forEach((c, index) => {
      const whereId = `${this._uid}-comment-${++nextId}`;
      const place = `${c.path}:${c.line}${c.side === 'old' ? ' (old)' : ''}`;
      const record = this._records.get(key(c.path, c.side, c.line));
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
      list.append(
        h(
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
        )
      );
    });
    this._commentsBox.append(list);
  }

  private async _withdraw(c: IComment, node: HTMLButtonElement, index: number): Promise<void> {
    node.disabled = true;
    try {
      await this._api.withdrawComment(this.label, c.id);
    } catch (err) {
      if (this.isDisposed) {
        return;
      }
      if (!(err instanceof CattyRequestError && err.status === 404)) {
        node.disabled = false;
        this._say(messageOf(err), true);
        return;
      }
      // Already gone (sent or withdrawn elsewhere): show what the server has.
    }
    if (this.isDisposed) {
      return;
    }
    this._comments = this._comments.filter(x => x.id !== c.id);
    this._renderComments();
    this._say('Comment withdrawn.');
    const buttons = this._commentsBox.querySelectorAll<HTMLButtonElement>('.catty-DiffComment-withdraw');
    (buttons[Math.min(index, buttons.length - 1)] ?? this._sendText).focus();
  }

  private async _send(): Promise<void> {
    if (this._sending || !this._comments.length) {
      return;
    }
    this._sending = true;
    this._sendButton.disabled = true;
    const count = this._comments.length;
    try {
      await this._api.send(this.label, this._sendText.value, this._client);
      if (this.isDisposed) {
        return;
      }
      this._sendText.value = '';
      this._comments = [];
      this._say(`Sent ${count === 1 ? '1 comment' : `${count} comments`} to the agent.`);
      this._sent.emit();
      try {
        this._comments = await this._api.comments(this.label);
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
        this._renderComments();
      }
    }
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

  private _jumpToLine(record: ILineRecord): void {
    const details = record.row.closest('details');
    if (details) {
      details.open = true;
    }
    record.reveal?.();
    record.row.scrollIntoView({ block: 'center' });
    record.row.querySelector<HTMLButtonElement>('.catty-DiffLine-comment')?.focus();
  }

  private readonly _api: CattyAPI;
  private readonly _client: string;
  private readonly _uid: string;
  private readonly _sent = new Signal<this, void>(this);
  private _diffLayout: DiffLayout = 'unified';
  private _diff: IDiff | null = null;
  private _comments: IComment[] = [];
  private _generation = 0;
  private _sending = false;
  private _records = new Map<string, ILineRecord>();
  private _boxes = new Map<string, IOpenBox>();
  private _extras = new WeakMap<HTMLElement, { comments: HTMLElement; boxes: HTMLElement }>();
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
