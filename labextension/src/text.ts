/**
 * Text helpers with no DOM and no JupyterLab: what goes into Markdown and into a shell.
 */

/**
 * TEXT with HTML tags made literal outside code, so Markdown shows `<img …>` as text.
 * Code spans and fenced blocks are left alone: Markdown already shows their content verbatim.
 */
export function literalHtml(text: string): string {
  const out: string[] = [];
  let fence: string | null = null;
  for (const line of text.split('\n')) {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fence !== null) {
      out.push(line);
      if (marker && marker[1][0] === fence[0] && marker[1].length >= fence.length) {
        fence = null;
      }
      continue;
    }
    if (marker) {
      fence = marker[1];
      out.push(line);
      continue;
    }
    // Outside fences: escape `<` except inside `code spans` (runs of backticks pair up).
    out.push(
      line
        .split(/(`+[^`]*`+)/)
        .map((part, i) => (i % 2 ? part : part.replace(/</g, '&lt;')))
        .join('')
    );
  }
  return out.join('\n');
}

/** TEXT quoted for a POSIX shell. */
export function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}
