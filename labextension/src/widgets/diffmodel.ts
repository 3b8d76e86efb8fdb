/**
 * The diff view's patch logic, without the page: a unified patch read into lines with the file
 * line numbers they stand for (as the server's `core/comments.py` reads it, so a comment's line
 * number finds the same line there), and those lines laid out in two columns.
 */

import type { IFileDiff } from '../types';

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

/**
 * The lines of PATCH a file's diff draws: from its first hunk on, at most MAX of them; `cut`
 * counts the lines left out at the end.
 */
export function shownLines(patch: string, max: number = MAX_LINES): { lines: IPatchLine[]; cut: number } {
  const all = patchLines(patch);
  // git's header lines (diff --git, index, ---/+++) say nothing the summary does not.
  const first = all.findIndex(l => l.kind === 'hunk');
  const lines = first >= 0 ? all.slice(first) : all;
  return { lines: lines.slice(0, max), cut: Math.max(0, lines.length - max) };
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

/** The path F had before a rename or copy, or null when it kept its path. */
export function renamedFrom(f: Pick<IFileDiff, 'path' | 'old_path'>): string | null {
  return f.old_path && f.old_path !== f.path ? f.old_path : null;
}

/**
 * The accessible name of the comment button of a line: `Comment on line N of PATH` for added
 * and context lines, `Comment on old line N of PATH` for removed ones (a hunk often has both a
 * removed and an added line N).
 */
export function lineName(path: string, side: Side, line: number): string {
  return side === 'old' ? `Comment on old line ${line} of ${path}` : `Comment on line ${line} of ${path}`;
}

/** The key of a commentable line: one per path, side and number. */
export function lineKey(path: string, side: Side, line: number): string {
  return `${side}:${line}:${path}`;
}
