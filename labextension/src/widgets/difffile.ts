/**
 * One file of the diff view: a collapsible section with its path, status and `+added −removed`,
 * and its patch drawn unified or side by side, each line with its comment button.
 *
 * Paths and patches come from agents: they go into the page as text only.
 */

import type { IFileDiff } from '../types';
import type { ReviewComments } from './diffcomments';
import {
  DiffLayout,
  IPatchLine,
  ISplitRow,
  Side,
  contentOf,
  numberOf,
  renamedFrom,
  shownLines,
  sideOf,
  splitRows
} from './diffmodel';
import { h } from './dom';

/** What drawing a file takes from its diff view. */
export interface IFileOptions {
  /** The view's id prefix (a file's section is `UID-file-INDEX`). */
  uid: string;
  layout: DiffLayout;
  /** Where the drawn lines are registered for comments. */
  review: ReviewComments;
  /** Paths of the files folded by the user: they stay folded across redraws. */
  collapsed: Set<string>;
  /** Paths of the notebooks whose raw patch the user opened. */
  rawShown: Set<string>;
}

/** `+added −removed` of F (or "binary"). */
export function diffStat(f: IFileDiff): HTMLElement {
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

/** One file, the INDEX-th: a collapsible section, its summary the path, status and stat. */
export function drawFile(f: IFileDiff, index: number, options: IFileOptions): HTMLElement {
  const path = f.path;
  const name = h('span', { class: 'catty-DiffFile-path' });
  const from = renamedFrom(f);
  if (from !== null) {
    name.append(
      h('span', { class: 'catty-DiffFile-oldPath', text: from }),
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
    diffStat(f)
  );
  const details = h(
    'details',
    {
      class: 'catty-DiffFile',
      attrs: { id: `${options.uid}-file-${index}`, 'data-path': path }
    },
    summary
  );
  details.open = !options.collapsed.has(path);
  details.addEventListener('toggle', () => {
    if (details.open) {
      options.collapsed.delete(path);
    } else {
      options.collapsed.add(path);
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
      const rawId = `${options.uid}-raw-${index}`;
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
          options.rawShown.add(path);
        } else {
          options.rawShown.delete(path);
        }
      };
      toggle.addEventListener('click', () => show(raw.hidden));
      body.append(toggle, raw);
      drawPatch(raw, pathsOf(f), f.patch, options, () => show(true));
      show(options.rawShown.has(path));
    }
  } else {
    drawPatch(body, pathsOf(f), f.patch || '', options);
  }
  return details;
}

/**
 * Which file a line's comment names: the file's path, but a removed line of a renamed file is a
 * line of the old file (the server looks it up there).
 */
interface IPaths {
  new: string;
  old: string;
}

function pathsOf(f: IFileDiff): IPaths {
  return { new: f.path, old: f.old_path || f.path };
}

/** The patch of PATHS drawn into HOST in the layout of OPTIONS. */
function drawPatch(
  host: HTMLElement,
  paths: IPaths,
  patch: string,
  options: IFileOptions,
  reveal?: () => void
): void {
  const { lines, cut } = shownLines(patch);
  if (!lines.length) {
    host.append(h('p', { class: 'catty-DiffFile-note', text: 'No changes to the content.' }));
    return;
  }
  const inner = h('div', { class: 'catty-DiffLines-inner' });
  const table = h('div', { class: `catty-DiffLines catty-DiffLines--${options.layout}` }, inner);
  if (options.layout === 'unified') {
    for (const line of lines) {
      inner.append(unifiedRow(options.review, paths, line, reveal));
    }
  } else {
    for (const row of splitRows(lines)) {
      inner.append(splitRow(options.review, paths, row, reveal));
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

function fullRow(line: IPatchLine): HTMLElement {
  return h('div', {
    class: line.kind === 'hunk' ? 'catty-DiffHunk' : 'catty-DiffMeta',
    text: line.text
  });
}

function unifiedRow(
  review: ReviewComments,
  paths: IPaths,
  line: IPatchLine,
  reveal?: () => void
): HTMLElement {
  const side = sideOf(line);
  const n = numberOf(line);
  if (side === null || n === null) {
    return fullRow(line);
  }
  const path = paths[side];
  const row = lineElement(path, line, side, n, 'catty-DiffLine');
  row.append(
    h('span', { class: 'catty-DiffLine-num catty-DiffLine-oldNum', text: line.old }),
    h('span', { class: 'catty-DiffLine-num catty-DiffLine-newNum', text: line.new }),
    review.commentButton(path, side, n),
    h('span', { class: 'catty-DiffLine-sign', text: line.text[0], attrs: { 'aria-hidden': 'true' } }),
    h('span', { class: 'catty-DiffLine-text', text: contentOf(line) })
  );
  review.register({ path, side, line: n, content: contentOf(line), row, anchor: row, reveal }, line);
  return row;
}

function splitRow(
  review: ReviewComments,
  paths: IPaths,
  split: ISplitRow,
  reveal?: () => void
): HTMLElement {
  if (split.full) {
    return fullRow(split.full);
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
    const path = paths[side];
    const el = lineElement(path, line, side, n, 'catty-DiffCell catty-DiffLine');
    el.append(
      h('span', { class: 'catty-DiffLine-num', text: num }),
      review.commentButton(path, side, n),
      h('span', { class: 'catty-DiffLine-sign', text: sign, attrs: { 'aria-hidden': 'true' } }),
      h('span', { class: 'catty-DiffLine-text', text: contentOf(line) })
    );
    review.register({ path, side, line: n, content: contentOf(line), row: el, anchor: row, reveal }, line);
    return el;
  };
  row.append(cell(split.left, 'old'), cell(split.right, 'new'));
  return row;
}

function lineElement(path: string, line: IPatchLine, side: Side, n: number, classes: string): HTMLElement {
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
