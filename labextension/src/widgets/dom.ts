/**
 * Small DOM helpers. Text always goes in as text (`textContent`), never as markup: transcripts,
 * diffs and names are written by agents and users. Markdown goes through JupyterLab's
 * sanitizing renderer instead (see `events.ts`).
 */

/** Attributes and handlers of a new element. */
export interface IProps {
  class?: string;
  text?: string | number | null;
  title?: string;
  /** Plain attributes (`aria-label`, `role`, `type`, `data-*`, ...). */
  attrs?: Record<string, string | number | boolean | null | undefined>;
  onclick?: (ev: MouseEvent) => void;
}

/** Make an element with PROPS and CHILDREN (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: IProps = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.class) {
    node.className = props.class;
  }
  if (props.text !== undefined && props.text !== null) {
    node.textContent = String(props.text);
  }
  if (props.title) {
    node.title = props.title;
  }
  for (const [key, value] of Object.entries(props.attrs ?? {})) {
    if (value === false || value === null || value === undefined) {
      continue;
    }
    node.setAttribute(key, value === true ? '' : String(value));
  }
  if (props.onclick) {
    node.addEventListener('click', props.onclick as EventListener);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child);
    }
  }
  return node;
}

/** A button (type=button) with a visible label and, when given, an accessible one. */
export function button(
  label: string,
  onclick: () => void,
  props: { class?: string; title?: string; aria?: string; disabled?: boolean } = {}
): HTMLButtonElement {
  const node = h('button', {
    class: `jp-Button catty-Button ${props.class ?? ''}`.trim(),
    text: label,
    title: props.title,
    attrs: { type: 'button', 'aria-label': props.aria }
  });
  node.disabled = !!props.disabled;
  node.addEventListener('click', () => onclick());
  return node;
}

/** "3 min ago"-style age of a Unix timestamp (seconds), relative to NOW (ms). */
export function age(ts: number, now: number = Date.now()): string {
  const secs = Math.max(0, Math.round(now / 1000 - ts));
  if (secs < 60) {
    return `${secs} s`;
  }
  if (secs < 3600) {
    return `${Math.floor(secs / 60)} min`;
  }
  if (secs < 86400) {
    return `${Math.floor(secs / 3600)} h`;
  }
  return `${Math.floor(secs / 86400)} d`;
}

/** TEXT cut to N characters with an ellipsis. */
export function clip(text: string, n: number): string {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/** What a tool call's input is about, in one line (the command, the file, ...). */
export function summary(input: unknown): string {
  if (input === undefined || input === null) {
    return '';
  }
  if (typeof input === 'string') {
    return input;
  }
  const o = input as Record<string, unknown>;
  const shown = o.command ?? o.file_path ?? o.path ?? o.pattern ?? o.url;
  if (typeof shown === 'string') {
    return shown;
  }
  try {
    return JSON.stringify(input);
  } catch {
    return String(input);
  }
}

/** The message of an error, for a notice. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
