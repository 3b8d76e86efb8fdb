/**
 * How transcript events look: one DOM node per event that shows something.
 *
 * Messages are Markdown rendered by JupyterLab's renderer from an untrusted model, so its
 * sanitizer applies; raw HTML in a message is shown as the text it is. Tool calls are collapsed
 * with their input, and their output joins them as it arrives; long outputs are cut with a
 * *Show all* button.
 */

import { MimeModel, IRenderMimeRegistry } from '@jupyterlab/rendermime';

import type { IEvent } from '../types';
import { literalHtml } from '../text';
import { clip, h, summary } from './dom';

/** Lines of a tool output shown before *Show all*. */
export const OUTPUT_LINES = 20;
/** Characters of a tool output shown before *Show all*. */
export const OUTPUT_CHARS = 3000;

/** Renders events into nodes; keeps each tool call's node so its output can join it. */
export class EventRenderer {
  constructor(
    private readonly _rendermime: IRenderMimeRegistry | null,
    /** This place's client id: its own messages say "you". */
    private readonly _client: string
  ) {}

  /** The node of EVENT, or null when it shows nothing (it may add to an earlier node). */
  render(event: IEvent): HTMLElement | null {
    const node = this._render(event);
    if (node) {
      node.dataset.seq = String(event.seq);
      node.dataset.kind = event.kind;
      node.classList.add('catty-Event');
    }
    return node;
  }

  private _render(event: IEvent): HTMLElement | null {
    const p = event.payload || {};
    switch (event.kind) {
      case 'user': {
        const who = event.client ? (event.client === this._client ? 'you' : event.client) : 'user';
        return this._message('catty-User', who, event, String(p.text ?? ''));
      }
      case 'assistant':
        return p.text ? this._message('catty-Assistant', 'agent', event, String(p.text)) : null;
      case 'comment':
        return this._line(
          'catty-CommentEvent',
          `Review comment on ${p.path}:${p.line}${p.line_text ? ` “${clip(String(p.line_text).trim(), 80)}”` : ''} — ${p.text ?? ''}`
        );
      case 'tool_use':
        return this._tool(event);
      case 'tool_result':
        return this._toolResult(event);
      case 'setup_log':
        return this._output(String(p.output ?? p.text ?? p.message ?? ''), 'catty-Setup');
      case 'permission_request':
        return this._line(
          'catty-PermissionEvent',
          `Permission asked to use ${p.tool_name || 'a tool'}: ${clip(summary(p.input), 300)}`
        );
      case 'permission_decision': {
        const yes = p.behavior === 'allow';
        const who = event.client ? ` by ${event.client}` : '';
        return this._line(
          yes ? 'catty-Decision catty-mod-allow' : 'catty-Decision catty-mod-deny',
          `${yes ? '✓ Allowed' : '✗ Denied'}${who}${p.message ? `: ${p.message}` : ''}`
        );
      }
      case 'status':
        if ('focus' in p) {
          return this._line('catty-Note', String(p.message || `${p.focus || 'nobody'} has control`));
        }
        return p.ready ? this._line('catty-Note', 'agent ready') : null;
      case 'result': {
        // The shell agent ends each command's turn with its exit code instead of a final output.
        const tool = p.tool_use_id ? this._tools.get(String(p.tool_use_id)) : undefined;
        if (tool) {
          this._settle(tool.node, !!p.is_error, p);
        }
        const secs = ((p.duration_ms || 0) / 1000).toFixed(1);
        const code = 'exit_code' in p ? `, exit ${p.exit_code}` : '';
        const bad = p.is_error || p.interrupted;
        return this._line(
          bad ? 'catty-Result catty-mod-bad' : 'catty-Result',
          `${p.interrupted ? 'turn interrupted' : 'turn done'} (${secs} s${code})`
        );
      }
      case 'system':
        return p.message ? this._line('catty-System', String(p.message)) : null;
      case 'error':
        return this._line('catty-Error', String(p.message || 'error'));
      default:
        return this._line('catty-System', `${event.kind}: ${clip(summary(p), 200)}`);
    }
  }

  private _message(cls: string, who: string, event: IEvent, text: string): HTMLElement {
    const body = h('div', { class: 'catty-Markdown', text });
    const node = h(
      'article',
      { class: `catty-Message ${cls}`, attrs: { 'aria-label': `${who} said` } },
      h('header', { class: 'catty-Message-who' }, h('span', { text: who }), h('time', { text: clock(event.ts) })),
      body
    );
    void this._markdown(body, text);
    return node;
  }

  // The plain text is on screen at once; the rendered Markdown replaces it when ready.
  private async _markdown(host: HTMLElement, text: string): Promise<void> {
    if (!this._rendermime) {
      return;
    }
    const renderer = this._rendermime.createRenderer('text/markdown');
    const model = new MimeModel({ data: { 'text/markdown': literalHtml(text) }, trusted: false });
    try {
      await renderer.renderModel(model);
    } catch {
      return; // the plain text stays
    }
    host.textContent = '';
    host.classList.add('catty-mod-rendered');
    host.append(renderer.node);
  }

  private _line(cls: string, text: string): HTMLElement {
    return h('div', { class: `catty-Line ${cls}`, text });
  }

  private _tool(event: IEvent): HTMLElement {
    const p = event.payload || {};
    const name = String(p.name || 'tool');
    const input =
      typeof p.input === 'string' ? p.input : JSON.stringify(p.input ?? null, null, 2);
    const outputs = h('div', { class: 'catty-Tool-outputs' });
    const details = h(
      'details',
      { class: 'catty-Tool' },
      h(
        'summary',
        { attrs: { 'aria-label': `Tool call ${name}: ${clip(summary(p.input), 120)}` } },
        h('span', { class: 'catty-Tool-name', text: name }),
        h('code', { class: 'catty-Tool-summary', text: clip(summary(p.input), 200) }),
        h('span', { class: 'catty-Tool-state', text: '…' })
      ),
      h('div', { class: 'catty-Tool-label', text: 'Input' }),
      h('pre', { class: 'catty-Tool-input', text: input }),
      outputs
    );
    if (p.id) {
      this._tools.set(String(p.id), { node: details, outputs, text: '', shown: null });
    }
    return details;
  }

  private _toolResult(event: IEvent): HTMLElement | null {
    const p = event.payload || {};
    const text = String(p.output ?? p.content ?? '');
    const tool = p.tool_use_id ? this._tools.get(String(p.tool_use_id)) : undefined;
    if (!tool) {
      return text.trim() ? this._output(text, p.is_error ? 'catty-mod-failed' : '') : null;
    }
    // Output may come in chunks; the tool's node shows it all so far.
    tool.text += text;
    if (p.final !== false) {
      this._settle(tool.node, !!p.is_error, p);
    }
    tool.shown?.remove();
    tool.shown = tool.text.trim() ? this._output(tool.text, p.is_error ? 'catty-mod-failed' : '') : null;
    if (tool.shown) {
      tool.outputs.replaceChildren(h('div', { class: 'catty-Tool-label', text: 'Output' }), tool.shown);
    }
    return null;
  }

  /** Mark a tool call done or failed. */
  private _settle(node: HTMLElement, failed: boolean, p: Record<string, any>): void {
    const state = node.querySelector('.catty-Tool-state');
    if (state) {
      const code = 'exit_code' in p ? ` (exit ${p.exit_code})` : '';
      state.textContent = failed ? `failed${code}` : 'done';
    }
    node.classList.toggle('catty-mod-failed', failed);
  }

  private _output(raw: string, cls: string): HTMLElement {
    const text = raw.replace(/\n+$/, '');
    const lines = text.split('\n');
    const pre = h('pre');
    const node = h('div', { class: `catty-Output ${cls}`.trim() }, pre);
    if (lines.length <= OUTPUT_LINES && text.length <= OUTPUT_CHARS) {
      pre.textContent = text;
      return node;
    }
    const short = clip(lines.slice(0, OUTPUT_LINES).join('\n'), OUTPUT_CHARS);
    pre.textContent = short;
    const more = h('button', {
      class: 'catty-ShowAll',
      text: `Show all ${lines.length} lines`,
      attrs: { type: 'button', 'aria-expanded': 'false' }
    });
    more.addEventListener('click', () => {
      const open = more.getAttribute('aria-expanded') === 'true';
      pre.textContent = open ? short : text;
      more.setAttribute('aria-expanded', open ? 'false' : 'true');
      more.textContent = open ? `Show all ${lines.length} lines` : 'Show less';
    });
    node.append(more);
    return node;
  }

  private _tools = new Map<
    string,
    { node: HTMLElement; outputs: HTMLElement; text: string; shown: HTMLElement | null }
  >();
}

/** The time of day of a Unix timestamp (seconds). */
function clock(ts: number): string {
  if (typeof ts !== 'number') {
    return '';
  }
  return new Date(ts * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
