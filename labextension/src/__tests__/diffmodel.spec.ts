/**
 * The diff view's patch logic: the line numbers a comment is sent with (they must be the ones
 * `core/comments.py` `patch_lines` gives, or the server quotes the wrong line to the agent),
 * the side-by-side rows, and what a file's diff shows.
 */

import {
  IPatchLine,
  contentOf,
  lineName,
  numberOf,
  patchLines,
  renamedFrom,
  shownLines,
  sideOf,
  splitLines,
  splitRows
} from '../widgets/diffmodel';

/** LINES as `[text, old, new]`, to compare at a glance. */
function numbered(lines: IPatchLine[]): [string, number | null, number | null][] {
  return lines.map(l => [l.text, l.old, l.new]);
}

const TWO_HUNKS = [
  'diff --git a/app.py b/app.py',
  'index 1111111..2222222 100644',
  '--- a/app.py',
  '+++ b/app.py',
  '@@ -1,3 +1,3 @@',
  ' import os',
  '-x = 1',
  '+x = 2',
  ' print(x)',
  '@@ -10,3 +10,4 @@ def main():',
  ' a',
  '-b',
  '+B',
  '+C',
  ' d',
  ''
].join('\n');

describe('patchLines', () => {
  test('numbers added, removed and context lines across two hunks as the server does', () => {
    expect(numbered(patchLines(TWO_HUNKS))).toEqual([
      // git's header: `---`/`+++` are not removed or added lines.
      ['diff --git a/app.py b/app.py', null, null],
      ['index 1111111..2222222 100644', null, null],
      ['--- a/app.py', null, null],
      ['+++ b/app.py', null, null],
      ['@@ -1,3 +1,3 @@', null, null],
      [' import os', 1, 1],
      ['-x = 1', 2, null],
      ['+x = 2', null, 2],
      [' print(x)', 3, 3],
      ['@@ -10,3 +10,4 @@ def main():', null, null],
      [' a', 10, 10],
      ['-b', 11, null],
      ['+B', null, 11],
      ['+C', null, 12],
      [' d', 12, 13]
    ]);
  });

  test('a comment on a removed line points at the old file, others at the new one', () => {
    const lines = patchLines(TWO_HUNKS);
    const removed = lines.find(l => l.text === '-b')!;
    const added = lines.find(l => l.text === '+C')!;
    const context = lines.find(l => l.text === ' d')!;
    const header = lines.find(l => l.text === '--- a/app.py')!;
    expect([sideOf(removed), numberOf(removed), contentOf(removed)]).toEqual(['old', 11, 'b']);
    expect([sideOf(added), numberOf(added), contentOf(added)]).toEqual(['new', 12, 'C']);
    expect([sideOf(context), numberOf(context), contentOf(context)]).toEqual(['new', 13, 'd']);
    // Headers take no comment: no side, no number.
    expect([sideOf(header), numberOf(header)]).toEqual([null, null]);
    expect(lineName('app.py', 'old', 11)).toBe('Comment on old line 11 of app.py');
    expect(lineName('app.py', 'new', 11)).toBe('Comment on line 11 of app.py');
  });

  test('"\\ No newline at end of file" takes no line number and no comment', () => {
    const patch = [
      '@@ -1,2 +1,2 @@',
      ' keep',
      '-old last',
      '\\ No newline at end of file',
      '+new last',
      '\\ No newline at end of file'
    ].join('\n');
    const lines = patchLines(patch);
    expect(numbered(lines)).toEqual([
      ['@@ -1,2 +1,2 @@', null, null],
      [' keep', 1, 1],
      ['-old last', 2, null],
      ['\\ No newline at end of file', null, null],
      ['+new last', null, 2],
      ['\\ No newline at end of file', null, null]
    ]);
    const notes = lines.filter(l => l.text.startsWith('\\'));
    expect(notes.map(l => [l.kind, sideOf(l)])).toEqual([
      ['meta', null],
      ['meta', null]
    ]);
    // Side by side, a note runs across both columns; every line is still drawn once.
    const rows = splitRows(lines);
    expect(rows.filter(r => r.full).map(r => r.full!.text)).toEqual([
      '@@ -1,2 +1,2 @@',
      '\\ No newline at end of file',
      '\\ No newline at end of file'
    ]);
    const drawn = rows.flatMap(r => [r.left?.text, r.right?.text]).filter(t => t && t !== ' keep');
    expect(drawn.sort()).toEqual(['+new last', '-old last']);
  });

  test('lines split at every break Python splitlines knows, so numbers agree with the server', () => {
    // A form feed (common in C and Python sources) or a vertical tab inside an added line
    // ends the line for `str.splitlines()`: the rest is a line of its own, not numbered.
    const patch = '@@ -1,2 +1,3 @@\r\n keep\r\n+page one\x0cpage two\n+tab\x0bbed\n-gone\r\n+last\n';
    expect(numbered(patchLines(patch))).toEqual([
      ['@@ -1,2 +1,3 @@', null, null],
      [' keep', 1, 1],
      ['+page one', null, 2],
      ['page two', null, null],
      ['+tab', null, 3],
      ['bed', null, null],
      ['-gone', 2, null],
      ['+last', null, 4]
    ]);
    // A CRLF file's lines carry no `\r` into the comment box.
    expect(contentOf(patchLines('@@ -1 +1 @@\r\n+crlf\r\n')[1])).toBe('crlf');
  });
});

describe('splitLines', () => {
  test("matches Python's str.splitlines", () => {
    // Python: 'a\r\nb\rc\x0bd\x0ce\x1cf\u2028g\n'.splitlines() == ['a', 'b', 'c', 'd', 'e', 'f', 'g']
    expect(splitLines('a\r\nb\rc\x0bd\x0ce\x1cf\u2028g\n')).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    // Python: 'h\x1di\x1ej\x85k\u2029l'.splitlines() == ['h', 'i', 'j', 'k', 'l']
    expect(splitLines('h\x1di\x1ej\x85k\u2029l')).toEqual(['h', 'i', 'j', 'k', 'l']);
    // Python: '\r\r\n'.splitlines() == ['', ''] (`\r` then `\r\n`, not three breaks)
    expect(splitLines('\r\r\n')).toEqual(['', '']);
    // Python: ''.splitlines() == [], 'a\n\n'.splitlines() == ['a', ''], '\n'.splitlines() == ['']
    expect(splitLines('')).toEqual([]);
    expect(splitLines('a\n\n')).toEqual(['a', '']);
    expect(splitLines('\n')).toEqual(['']);
    // A tab is not a line break.
    expect(splitLines('a\tb')).toEqual(['a\tb']);
  });
});

describe('splitRows', () => {
  test('pairs a removed line with the added line that replaces it; extra added lines stand alone', () => {
    const lines = shownLines(TWO_HUNKS).lines;
    const rows = splitRows(lines.slice(lines.findIndex(l => l.text.startsWith('@@ -10'))));
    expect(rows.map(r => (r.full ? r.full.text : [r.left?.text ?? null, r.right?.text ?? null]))).toEqual([
      '@@ -10,3 +10,4 @@ def main():',
      [' a', ' a'],
      ['-b', '+B'],
      [null, '+C'],
      [' d', ' d']
    ]);
  });

  test('more removed than added lines leave the right column empty', () => {
    const rows = splitRows(patchLines('@@ -1,3 +1,1 @@\n-one\n-two\n-three\n+1'));
    expect(rows.slice(1).map(r => [r.left?.text ?? null, r.right?.text ?? null])).toEqual([
      ['-one', '+1'],
      ['-two', null],
      ['-three', null]
    ]);
  });
});

describe('a file', () => {
  test('a rename shows the path it had, and its patch starts at the first hunk', () => {
    const f = { path: 'src/new_name.py', old_path: 'src/old_name.py' };
    expect(renamedFrom(f)).toBe('src/old_name.py');
    expect(renamedFrom({ path: 'app.py', old_path: null })).toBeNull();
    expect(renamedFrom({ path: 'app.py', old_path: 'app.py' })).toBeNull();

    const patch = [
      'diff --git a/src/old_name.py b/src/new_name.py',
      'similarity index 90%',
      'rename from src/old_name.py',
      'rename to src/new_name.py',
      '--- a/src/old_name.py',
      '+++ b/src/new_name.py',
      '@@ -4 +4 @@',
      '-x = 1',
      '+x = 2'
    ].join('\n');
    const { lines, cut } = shownLines(patch);
    expect(numbered(lines)).toEqual([
      ['@@ -4 +4 @@', null, null],
      ['-x = 1', 4, null],
      ['+x = 2', null, 4]
    ]);
    expect(cut).toBe(0);
  });

  test('a pure rename shows what git says of it, with nothing to comment on', () => {
    const patch = 'diff --git a/a.txt b/b.txt\nsimilarity index 100%\nrename from a.txt\nrename to b.txt\n';
    const { lines } = shownLines(patch);
    expect(lines.map(l => l.text)).toContain('rename to b.txt');
    expect(lines.every(l => sideOf(l) === null)).toBe(true);
  });

  test('a long patch is cut, and the cut says how many lines are missing', () => {
    const patch = ['@@ -1,0 +1,5 @@', '+1', '+2', '+3', '+4', '+5'].join('\n');
    const { lines, cut } = shownLines(patch, 4);
    expect(lines.map(l => l.text)).toEqual(['@@ -1,0 +1,5 @@', '+1', '+2', '+3']);
    expect(cut).toBe(2);
  });
});
