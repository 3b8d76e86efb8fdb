/**
 * The body of the *New session* dialog: prompt, environment, agent and source.
 */

import { Widget } from '@lumino/widgets';

import type { INewSession } from '../api';
import type { IAgent, IEnvironment } from '../types';
import { h } from './dom';

/** What the dialog starts with. */
export interface INewSessionDefaults {
  prompt?: string;
  environment?: string;
  agent?: string;
  /** The folder whose repository is the default source (relative to the server's root). */
  folder: string;
  /** Whether the source is an empty workspace. */
  empty?: boolean;
  /** A message from a failed attempt, shown at the top. */
  error?: string;
}

/** The dialog's form. */
export class NewSessionForm extends Widget {
  constructor(
    environments: IEnvironment[],
    agents: IAgent[],
    defaults: INewSessionDefaults
  ) {
    super();
    this.addClass('catty-NewSession-form');
    const field = (id: string, label: string, control: HTMLElement, hint?: string) =>
      h(
        'div',
        { class: 'catty-Field' },
        h('label', { text: label, attrs: { for: id } }),
        control,
        hint ? h('div', { class: 'catty-Field-hint', text: hint, attrs: { id: `${id}-hint` } }) : null
      );

    this._prompt = h('textarea', {
      class: 'jp-mod-styled',
      attrs: { id: 'catty-new-prompt', rows: 5, placeholder: 'What should the agent do?' }
    });
    this._prompt.value = defaults.prompt ?? '';
    this._env = h(
      'select',
      { class: 'jp-mod-styled', attrs: { id: 'catty-new-env' } },
      ...environments.map(e =>
        h('option', {
          text: e.description ? `${e.name} — ${e.description}` : e.name,
          attrs: { value: e.name }
        })
      )
    );
    if (defaults.environment && environments.some(e => e.name === defaults.environment)) {
      this._env.value = defaults.environment;
    }
    this._agent = h(
      'select',
      { class: 'jp-mod-styled', attrs: { id: 'catty-new-agent' } },
      h('option', { text: "the environment's agent", attrs: { value: '' } }),
      ...agents.map(a => h('option', { text: a.name, attrs: { value: a.name } }))
    );
    this._agent.value = defaults.agent ?? '';
    this._folder = h('input', {
      class: 'jp-mod-styled',
      attrs: { id: 'catty-new-folder', type: 'text', 'aria-describedby': 'catty-new-folder-hint' }
    });
    this._folder.value = defaults.folder;
    this._empty = h('input', { attrs: { id: 'catty-new-empty', type: 'checkbox' } });
    this._empty.checked = !!defaults.empty;
    const sync = () => (this._folder.disabled = this._empty.checked);
    this._empty.addEventListener('change', sync);
    sync();

    this.node.append(
      defaults.error
        ? h('div', { class: 'catty-FieldError catty-mod-general', text: defaults.error, attrs: { role: 'alert' } })
        : '',
      field('catty-new-prompt', 'Prompt', this._prompt),
      field('catty-new-env', 'Environment', this._env),
      field('catty-new-agent', 'Agent', this._agent),
      field(
        'catty-new-folder',
        'Repository',
        this._folder,
        'The agent works on a copy of the git repository holding this folder (relative to the ' +
          "server's root; / is the root)."
      ),
      h('label', { class: 'catty-Check' }, this._empty, ' Start with an empty workspace instead')
    );
  }

  /** The prompt box, to focus when the dialog opens. */
  get promptNode(): HTMLTextAreaElement {
    return this._prompt;
  }

  /** The session the form describes (without a client). */
  getValue(): INewSession & { folder: string; empty: boolean } {
    const folder = this._folder.value.trim().replace(/^\/+/, '');
    return {
      prompt: this._prompt.value,
      environment: this._env.value || undefined,
      agent: this._agent.value || undefined,
      repo: this._empty.checked ? null : folder || '.',
      folder: this._folder.value,
      empty: this._empty.checked
    };
  }

  private _prompt: HTMLTextAreaElement;
  private _env: HTMLSelectElement;
  private _agent: HTMLSelectElement;
  private _folder: HTMLInputElement;
  private _empty: HTMLInputElement;
}
