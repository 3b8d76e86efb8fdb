/**
 * The environment editor: create or change an environment. The server validates it; a refused
 * field shows the server's message beside it (a malformed `.env` line names its line).
 *
 * Secret values arrive masked (`********`) and stay masked: sending the mask back keeps the
 * stored value. Names, values and messages go into the page as text only, never as markup.
 */

import { CodeEditor, IEditorServices } from '@jupyterlab/codeeditor';
import type { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { CattyAPI, CattyRequestError } from '../api';
import type { IEnvironment } from '../types';
import { button, h, messageOf } from './dom';

/** What API responses show instead of a secret's value (`core/environments.py` MASK). */
export const MASK = '********';

/** The network levels an environment can have. */
export const NETWORK_LEVELS = ['none', 'trusted', 'full', 'custom'] as const;

/** What each network level lets a session reach. */
const NETWORK_HELP: Record<string, string> = {
  none: 'none: no network beyond the session itself.',
  trusted: 'trusted: the built-in list of package registries and source hosts.',
  full: 'full: any host.',
  custom: 'custom: only the allowed domains below (plus the trusted list, when ticked).'
};

const UNITS: [string, number][] = [
  ['T', 2 ** 40],
  ['G', 2 ** 30],
  ['M', 2 ** 20],
  ['K', 2 ** 10]
];

/**
 * A byte count as the editor shows it (`2G`, `512M`, `1.5G`), or "" for none. A size no unit
 * writes exactly (to one decimal) is given in bytes, so saving it back does not change it.
 */
export function formatSize(size: number | null | undefined): string {
  if (size === null || size === undefined || !Number.isFinite(size) || size <= 0) {
    return '';
  }
  for (const [unit, factor] of UNITS) {
    if (size >= factor) {
      const text = (size / factor).toFixed(1).replace(/\.0$/, '');
      if (Math.trunc(parseFloat(text) * factor) === size) {
        return `${text}${unit}`;
      }
    }
  }
  return String(size);
}

/** The editor's fields, as the server names them. */
export type EnvironmentField =
  | 'name'
  | 'description'
  | 'agent'
  | 'network'
  | 'allowed_domains'
  | 'include_defaults'
  | 'env'
  | 'secrets'
  | 'setup_script'
  | 'cpus'
  | 'memory'
  | 'disk'
  | 'resources';

/** What each field is called on the page. */
const LABELS: Record<EnvironmentField, string> = {
  name: 'Name',
  description: 'Description',
  agent: 'Agent',
  network: 'Network',
  allowed_domains: 'Allowed domains',
  include_defaults: 'Trusted list',
  env: 'Variables',
  secrets: 'Secrets',
  setup_script: 'Setup script',
  cpus: 'CPUs',
  memory: 'Memory',
  disk: 'Disk',
  resources: 'Resources'
};

/** The form's values, as text. */
export interface IEnvironmentForm {
  name: string;
  description: string;
  agent: string;
  network: string;
  allowed_domains: string;
  include_defaults: boolean;
  env: string;
  secrets: string;
  setup_script: string;
  cpus: string;
  memory: string;
  disk: string;
}

/** The form's values of ENV (sizes as `2G`, lists as lines or comma-separated names). */
export function formOf(env: IEnvironment): IEnvironmentForm {
  const resources = env.resources ?? { cpus: null, memory: null, disk: null };
  return {
    name: env.name,
    description: env.description ?? '',
    agent: env.agent ?? '',
    network: env.network || 'full',
    allowed_domains: (env.allowed_domains ?? []).join('\n'),
    include_defaults: !!env.include_defaults,
    env: env.env ?? '',
    secrets: (env.secrets ?? []).join(', '),
    setup_script: env.setup_script ?? '',
    cpus: resources.cpus === null || resources.cpus === undefined ? '' : String(resources.cpus),
    memory: formatSize(resources.memory),
    disk: formatSize(resources.disk)
  };
}

/** The body the environments API takes from FORM (without the name). */
export function bodyOf(form: IEnvironmentForm): Record<string, unknown> {
  const body: Record<string, unknown> = {
    description: form.description,
    network: form.network,
    allowed_domains: form.allowed_domains
      .split('\n')
      .map(d => d.trim())
      .filter(d => d),
    include_defaults: form.include_defaults,
    env: form.env,
    secrets: form.secrets
      .split(',')
      .map(s => s.trim())
      .filter(s => s),
    setup_script: form.setup_script,
    // Sizes go as typed (`512M`): the server reads them and says what is wrong with them.
    resources: {
      cpus: form.cpus.trim() || null,
      memory: form.memory.trim() || null,
      disk: form.disk.trim() || null
    }
  };
  if (form.agent.trim()) {
    body.agent = form.agent.trim();
  }
  return body;
}

const EMPTY: IEnvironmentForm = {
  name: '',
  description: '',
  agent: 'claude',
  network: 'full',
  allowed_domains: '',
  include_defaults: false,
  env: '',
  secrets: '',
  setup_script: '',
  cpus: '',
  memory: '',
  disk: ''
};

/** Options of an environment editor. */
export interface IEnvironmentEditorOptions {
  api: CattyAPI;
  /** The environment to edit; none: a new one. */
  name?: string;
  /** Makes the setup script a CodeMirror editor (a textarea without it). */
  editorServices?: IEditorServices;
}

/** A field's error slot and the control it describes. */
interface ISlot {
  slot: HTMLElement;
  /** The element that gets aria-invalid / aria-describedby. */
  control: () => HTMLElement;
  /** What aria-describedby holds without the error (the help text). */
  help: string;
}

let nextId = 0;

/**
 * An environment's fields; *Save* sends them to the server, which validates them.
 */
export class EnvironmentEditor extends Widget {
  constructor(options: IEnvironmentEditorOptions) {
    super();
    this._api = options.api;
    this._name = options.name ?? '';
    this._uid = `catty-env-${++nextId}`;
    this.addClass('catty-EnvEditor');

    const id = (field: string) => `${this._uid}-${field}`;

    this._title = h('h2', { class: 'catty-EnvEditor-title', attrs: { id: id('title') } });
    this._error = h('div', {
      class: 'catty-EnvEditor-error',
      attrs: { role: 'alert', hidden: true }
    });
    this._readOnlyNote = h('p', {
      class: 'catty-EnvEditor-readonly',
      attrs: { hidden: true }
    });
    this._status = h('div', {
      class: 'catty-EnvEditor-status',
      attrs: { role: 'status', 'aria-live': 'polite' }
    });

    // Controls
    this._inputs = {
      name: h('input', {
        class: 'catty-EnvEditor-input',
        attrs: {
          id: id('name'),
          type: 'text',
          placeholder: 'my-env',
          autocomplete: 'off',
          spellcheck: 'false',
          maxlength: 63
        }
      }),
      description: h('input', {
        class: 'catty-EnvEditor-input',
        attrs: { id: id('description'), type: 'text' }
      }),
      agent: h('input', {
        class: 'catty-EnvEditor-input',
        attrs: {
          id: id('agent'),
          type: 'text',
          placeholder: 'claude',
          autocomplete: 'off',
          spellcheck: 'false',
          list: id('agents')
        }
      }),
      cpus: h('input', {
        class: 'catty-EnvEditor-input catty-EnvEditor-size',
        attrs: { id: id('cpus'), type: 'text', placeholder: 'e.g. 2', inputmode: 'decimal' }
      }),
      memory: h('input', {
        class: 'catty-EnvEditor-input catty-EnvEditor-size',
        attrs: { id: id('memory'), type: 'text', placeholder: 'e.g. 4G' }
      }),
      disk: h('input', {
        class: 'catty-EnvEditor-input catty-EnvEditor-size',
        attrs: { id: id('disk'), type: 'text', placeholder: 'e.g. 10G' }
      }),
      secrets: h('input', {
        class: 'catty-EnvEditor-input',
        attrs: {
          id: id('secrets'),
          type: 'text',
          placeholder: 'names of secret variables, comma-separated',
          autocomplete: 'off',
          spellcheck: 'false'
        }
      })
    };
    this._agents = h('datalist', { attrs: { id: id('agents') } });
    this._network = h(
      'select',
      { class: 'catty-EnvEditor-select', attrs: { id: id('network') } },
      ...NETWORK_LEVELS.map(level => h('option', { text: level, attrs: { value: level } }))
    );
    this._domains = h('textarea', {
      class: 'catty-EnvEditor-textarea',
      attrs: {
        id: id('allowed_domains'),
        rows: 3,
        placeholder: 'one per line: pypi.org, *.example.com',
        spellcheck: 'false'
      }
    });
    this._includeDefaults = h('input', {
      class: 'catty-EnvEditor-checkbox',
      attrs: { id: id('include_defaults'), type: 'checkbox' }
    });
    this._env = h('textarea', {
      class: 'catty-EnvEditor-textarea catty-EnvEditor-code',
      attrs: {
        id: id('env'),
        rows: 5,
        placeholder: 'KEY=value, one per line',
        spellcheck: 'false',
        autocomplete: 'off',
        wrap: 'off'
      }
    });

    // The setup script: CodeMirror with shell highlighting, or a plain textarea.
    const scriptHost = h('div', {
      class: 'catty-EnvEditor-script',
      attrs: { id: id('setup_script') }
    });
    if (options.editorServices) {
      this._scriptModel = new CodeEditor.Model({ mimeType: 'text/x-sh' });
      this._scriptEditor = options.editorServices.factoryService.newInlineEditor({
        host: scriptHost,
        model: this._scriptModel,
        config: { lineNumbers: true }
      });
      this._scriptModel.sharedModel.changed.connect(this._edited, this);
      // CodeMirror's text box is not labelable: name it by the label's id instead.
      this._scriptTarget().setAttribute('aria-labelledby', id('setup_script-label'));
      this._scriptControl = scriptHost;
    } else {
      this._scriptText = h('textarea', {
        class: 'catty-EnvEditor-textarea catty-EnvEditor-code',
        attrs: {
          id: id('setup_script'),
          rows: 8,
          placeholder: '#!/bin/bash\npip install -e .',
          spellcheck: 'false',
          wrap: 'off'
        }
      });
      this._scriptControl = this._scriptText;
    }

    this._variablesNote = h('span', { class: 'catty-EnvEditor-secretsNote' });
    this._networkHelp = h('span', {});

    // Layout
    const form = h('form', {
      class: 'catty-EnvEditor-form',
      attrs: { novalidate: true, 'aria-labelledby': this._title.id }
    });
    form.addEventListener('submit', ev => {
      ev.preventDefault();
      void this.save();
    });
    form.addEventListener('input', () => this._edited());
    form.addEventListener('change', () => this._edited());

    this._nameRow = this._row('name', this._inputs.name, [
      'Lower-case letters, digits, -, _ and ., starting with a letter or digit (at most 63).'
    ]);
    form.append(
      this._nameRow,
      this._row('description', this._inputs.description),
      this._row('agent', this._inputs.agent, ['The agent sessions run, e.g. claude.'], this._agents),
      this._row('network', this._network, [this._networkHelp]),
      this._row('allowed_domains', this._domains, [
        'Hosts sessions may reach with the custom level, one per line: pypi.org or *.example.com.'
      ]),
      this._checkboxRow(),
      this._row('env', this._env, [
        'KEY=value, one per line; # starts a comment. ',
        this._variablesNote
      ]),
      this._row('secrets', this._inputs.secrets, [
        'Variables whose values are never shown back (they come back as ',
        h('code', { text: MASK }),
        ').'
      ]),
      this._row(
        'setup_script',
        options.editorServices ? scriptHost : this._scriptControl,
        ['A bash script run before the agent starts, when the session is sandboxed.']
      ),
      this._resources()
    );
    this._saveButton = h('button', {
      class: 'jp-Button catty-Button jp-mod-accept catty-EnvEditor-save',
      text: 'Save',
      attrs: { type: 'submit' }
    });
    form.append(h('div', { class: 'catty-EnvEditor-actions' }, this._saveButton, this._status));

    if (this._scriptEditor) {
      // The label of a CodeMirror editor: name its text box, focus it on a click.
      const label = form.querySelector<HTMLElement>(`#${this._uid}-setup_script-label`);
      label?.addEventListener('click', ev => {
        ev.preventDefault();
        this._scriptEditor?.focus();
      });
    }
    this._network.addEventListener('change', () => this._showNetworkHelp());

    this.node.append(this._title, this._readOnlyNote, this._error, form);
    this._fill(EMPTY);
    this._setMode(this._name ? 'loading' : 'new');
  }

  /** Emitted with the environment as the server has it after each successful save. */
  get saved(): ISignal<this, IEnvironment> {
    return this._saved;
  }

  /** The environment being edited ("" while a new one has no name yet). */
  get name(): string {
    return this._name;
  }

  /** Whether the environment exists on the server (Save updates it instead of creating it). */
  get exists(): boolean {
    return this._exists;
  }

  /** Whether the environment is the administrator's (shown, not changeable). */
  get readOnly(): boolean {
    return this._readOnly;
  }

  /** The form's current values. */
  get values(): IEnvironmentForm {
    return {
      name: this._exists ? this._name : this._inputs.name.value.trim(),
      description: this._inputs.description.value,
      agent: this._inputs.agent.value,
      network: this._network.value,
      allowed_domains: this._domains.value,
      include_defaults: this._includeDefaults.checked,
      env: this._env.value,
      secrets: this._inputs.secrets.value,
      setup_script: this._script,
      cpus: this._inputs.cpus.value,
      memory: this._inputs.memory.value,
      disk: this._inputs.disk.value
    };
  }

  /** Show the environment as the server has it (a name not found starts a new one). */
  async load(): Promise<void> {
    this._clearErrors();
    this._say('');
    void this._loadAgents();
    if (!this._name) {
      this._fill(EMPTY);
      this._setMode('new');
      return;
    }
    const name = this._name;
    this._setMode('loading');
    this._say('Loading the environment…');
    let env: IEnvironment;
    try {
      env = await this._api.environment(name);
    } catch (err) {
      if (this.isDisposed) {
        return;
      }
      this._say('');
      if (err instanceof CattyRequestError && err.status === 404) {
        this._exists = false;
        this._fill({ ...EMPTY, name });
        this._setMode('new');
        this._say(`${name} does not exist yet: Save creates it.`);
        return;
      }
      this._setMode(this._exists ? 'edit' : 'new');
      this._showGeneral(messageOf(err), () => void this.load());
      return;
    }
    if (this.isDisposed) {
      return;
    }
    this._say('');
    this._show(env);
  }

  /** Create or update the environment; false (with the reason shown) when it was refused. */
  async save(): Promise<boolean> {
    if (this._saving || this._readOnly) {
      return false;
    }
    this._clearErrors();
    this._say('');
    const values = this.values;
    if (!values.name) {
      this._fieldError('name', 'Give the environment a name.');
      return false;
    }
    this._saving = true;
    this._saveButton.disabled = true;
    this.node.setAttribute('aria-busy', 'true');
    try {
      const body = bodyOf(values);
      // Sizes and cpus go as typed, which IEnvironment's numbers do not say.
      const env = this._exists
        ? await this._api.updateEnvironment(values.name, body as Partial<IEnvironment>)
        : await this._api.createEnvironment({ ...body, name: values.name } as Partial<IEnvironment> & {
            name: string;
          });
      if (this.isDisposed) {
        return true;
      }
      this._show(env);
      this._say('Saved', 'success');
      this._saved.emit(env);
      return true;
    } catch (err) {
      if (!this.isDisposed) {
        this._showRefusal(err);
      }
      return false;
    } finally {
      this._saving = false;
      if (!this.isDisposed) {
        this._saveButton.disabled = this._readOnly;
        this.node.removeAttribute('aria-busy');
      }
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._scriptEditor?.dispose();
    this._scriptModel?.dispose();
    Signal.clearData(this);
    super.dispose();
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    if (!this.node.contains(document.activeElement)) {
      const first = this._exists ? this._inputs.description : this._inputs.name;
      (first.disabled ? this.node.querySelector<HTMLElement>('input, select, textarea') : first)?.focus();
    }
  }

  // ---- building -----------------------------------------------------------------------------

  /** The error slot of FIELD, registered with the control it describes. */
  private _slot(field: EnvironmentField, control: () => HTMLElement, help: string): HTMLElement {
    const slot = h('div', {
      class: 'catty-FieldError',
      attrs: { id: `${this._uid}-${field}-error`, 'data-field': field, hidden: true }
    });
    this._slots.set(field, { slot, control, help });
    return slot;
  }

  /** A labelled row: label, control, help text and error slot. */
  private _row(
    field: EnvironmentField,
    control: HTMLElement,
    help: (string | Node)[] = [],
    ...extra: HTMLElement[]
  ): HTMLElement {
    const helpId = help.length ? `${this._uid}-${field}-help` : '';
    const target = field === 'setup_script' && this._scriptEditor ? () => this._scriptTarget() : () => control;
    const row = h(
      'div',
      { class: 'catty-EnvField', attrs: { 'data-field': field } },
      h('label', {
        class: 'catty-EnvField-label',
        text: LABELS[field],
        attrs: { for: `${this._uid}-${field}`, id: `${this._uid}-${field}-label` }
      }),
      h(
        'div',
        { class: 'catty-EnvField-control' },
        control,
        ...extra,
        help.length ? h('div', { class: 'catty-EnvField-help', attrs: { id: helpId } }, ...help) : null,
        this._slot(field, target, helpId)
      )
    );
    if (helpId) {
      target().setAttribute('aria-describedby', helpId);
    }
    return row;
  }

  private _checkboxRow(): HTMLElement {
    const field: EnvironmentField = 'include_defaults';
    return h(
      'div',
      { class: 'catty-EnvField catty-EnvField--checkbox', attrs: { 'data-field': field } },
      h('span', { class: 'catty-EnvField-label', text: LABELS[field], attrs: { 'aria-hidden': 'true' } }),
      h(
        'div',
        { class: 'catty-EnvField-control' },
        h(
          'div',
          { class: 'catty-EnvEditor-check' },
          this._includeDefaults,
          h('label', {
            text: 'also allow the trusted list',
            attrs: { for: this._includeDefaults.id, id: `${this._uid}-${field}-label` }
          })
        ),
        this._slot(field, () => this._includeDefaults, '')
      )
    );
  }

  private _resources(): HTMLElement {
    const helpId = `${this._uid}-resources-help`;
    const fieldset = h(
      'fieldset',
      { class: 'catty-EnvField-group', attrs: { 'data-field': 'resources', 'aria-describedby': helpId } },
      h('legend', { class: 'catty-EnvField-legend', text: LABELS.resources }),
      h(
        'div',
        { class: 'catty-EnvEditor-resources' },
        this._row('cpus', this._inputs.cpus),
        this._row('memory', this._inputs.memory),
        this._row('disk', this._inputs.disk)
      ),
      h('div', {
        class: 'catty-EnvField-help',
        text: 'How much of the machine one session may take. Empty: no limit of its own. Sizes like 512M or 2G.',
        attrs: { id: helpId }
      })
    );
    fieldset.append(this._slot('resources', () => fieldset, helpId));
    return fieldset;
  }

  /** The element of the CodeMirror editor that screen readers see as the text box. */
  private _scriptTarget(): HTMLElement {
    const host = this._scriptEditor!.host;
    return host.querySelector<HTMLElement>('.cm-content') ?? host;
  }

  // ---- state --------------------------------------------------------------------------------

  private get _script(): string {
    if (this._scriptModel) {
      return this._scriptModel.sharedModel.getSource();
    }
    return this._scriptText?.value ?? '';
  }

  private set _script(value: string) {
    if (this._scriptModel) {
      this._scriptModel.sharedModel.setSource(value);
    } else if (this._scriptText) {
      this._scriptText.value = value;
    }
  }

  private _fill(form: IEnvironmentForm): void {
    this._filling = true;
    try {
      this._inputs.name.value = form.name;
      this._inputs.description.value = form.description;
      this._inputs.agent.value = form.agent;
      this._network.value = (NETWORK_LEVELS as readonly string[]).includes(form.network)
        ? form.network
        : 'full';
      this._domains.value = form.allowed_domains;
      this._includeDefaults.checked = form.include_defaults;
      this._env.value = form.env;
      this._inputs.secrets.value = form.secrets;
      this._script = form.setup_script;
      this._inputs.cpus.value = form.cpus;
      this._inputs.memory.value = form.memory;
      this._inputs.disk.value = form.disk;
    } finally {
      this._filling = false;
    }
    this._showNetworkHelp();
  }

  /** Show ENV as the server returned it. */
  private _show(env: IEnvironment): void {
    this._exists = true;
    this._name = env.name;
    this._readOnly = !!env.read_only;
    this._fill(formOf(env));
    const secret = (env.variables ?? []).filter(v => v.secret).map(v => v.name);
    this._variablesNote.textContent = secret.length
      ? `The values of ${secret.join(', ')} are secret and shown as ${MASK}: leave ${MASK} in ` +
        'place to keep a stored value, or write a new value to replace it.'
      : `Secret values are shown as ${MASK}: leaving ${MASK} in place keeps the stored value.`;
    this._setMode(this._readOnly ? 'readonly' : 'edit');
  }

  private _setMode(mode: 'new' | 'loading' | 'edit' | 'readonly'): void {
    this.node.dataset.mode = mode;
    this._title.textContent = mode === 'new' ? 'New environment' : `Environment ${this._name}`;
    if (mode === 'new') {
      this._variablesNote.textContent = `Secret values are shown as ${MASK}: leaving ${MASK} in place keeps the stored value.`;
    }
    // The name is typed only for a new environment; then it is fixed.
    const naming = mode === 'new';
    this._inputs.name.readOnly = !naming;
    this._inputs.name.setAttribute('aria-readonly', String(!naming));
    this._nameRow.classList.toggle('catty-mod-readonly', !naming);

    const disabled = mode === 'loading' || mode === 'readonly';
    for (const control of [
      this._inputs.description,
      this._inputs.agent,
      this._inputs.cpus,
      this._inputs.memory,
      this._inputs.disk,
      this._inputs.secrets,
      this._network,
      this._domains,
      this._includeDefaults,
      this._env
    ]) {
      control.disabled = disabled;
    }
    this._inputs.name.disabled = mode === 'loading' || mode === 'readonly';
    if (this._scriptText) {
      this._scriptText.disabled = disabled;
    }
    this._scriptEditor?.setOption('readOnly', disabled);
    this._scriptControl.classList.toggle('catty-mod-disabled', disabled);
    this._saveButton.disabled = disabled || this._saving;
    this._saveButton.hidden = mode === 'readonly';
    this._readOnlyNote.hidden = mode !== 'readonly';
    this._readOnlyNote.textContent =
      mode === 'readonly'
        ? `${this._name} is defined by the server's configuration: read-only. ` +
          'Its fields are shown but cannot be changed here.'
        : '';
    if (mode === 'loading') {
      this.node.setAttribute('aria-busy', 'true');
    } else if (!this._saving) {
      this.node.removeAttribute('aria-busy');
    }
  }

  private _showNetworkHelp(): void {
    this._networkHelp.textContent = NETWORK_HELP[this._network.value] ?? '';
  }

  /** Something was typed: the last "Saved" no longer describes the form. */
  private _edited(): void {
    if (!this._filling && this._status.classList.contains('catty-mod-success')) {
      this._say('');
    }
  }

  private async _loadAgents(): Promise<void> {
    if (this._agentsLoaded) {
      return;
    }
    this._agentsLoaded = true;
    try {
      const agents = await this._api.agents();
      this._agents.replaceChildren(...agents.map(a => h('option', { attrs: { value: a.name } })));
    } catch {
      this._agentsLoaded = false; // a free-text field still works
    }
  }

  // ---- messages -----------------------------------------------------------------------------

  private _say(message: string, kind: 'success' | '' = ''): void {
    this._status.textContent = message;
    this._status.classList.toggle('catty-mod-success', kind === 'success');
  }

  private _showGeneral(message: string, retry?: () => void): void {
    this._error.replaceChildren(h('span', { class: 'catty-EnvEditor-errorText', text: message }));
    if (retry) {
      this._error.append(button('Retry', retry, { class: 'catty-EnvEditor-retry' }));
    }
    this._error.hidden = false;
  }

  private _clearErrors(): void {
    this._error.hidden = true;
    this._error.replaceChildren();
    for (const { slot, control, help } of this._slots.values()) {
      slot.textContent = '';
      slot.hidden = true;
      const target = control();
      target.removeAttribute('aria-invalid');
      if (help) {
        target.setAttribute('aria-describedby', help);
      } else {
        target.removeAttribute('aria-describedby');
      }
    }
  }

  /** MESSAGE beside FIELD (and a pointer to it at the top); the field gets focus. */
  private _fieldError(field: EnvironmentField, message: string, line: number | null = null): void {
    const entry = this._slots.get(field)!;
    const text = line !== null && !new RegExp(`^line ${line}\\b`, 'i').test(message)
      ? `line ${line}: ${message}`
      : message;
    entry.slot.textContent = text;
    entry.slot.hidden = false;
    const target = entry.control();
    target.setAttribute('aria-invalid', 'true');
    target.setAttribute('aria-describedby', `${entry.help} ${entry.slot.id}`.trim());
    this._showGeneral(`Not saved: see ${LABELS[field]}.`);
    if (field === 'setup_script' && this._scriptEditor) {
      this._scriptEditor.focus();
    } else if (field === 'resources') {
      this._inputs.cpus.focus();
    } else {
      target.focus();
    }
    if (line !== null && target instanceof HTMLTextAreaElement) {
      selectLine(target, line);
    }
  }

  private _showRefusal(err: unknown): void {
    if (err instanceof CattyRequestError && err.field && this._slots.has(err.field as EnvironmentField)) {
      this._fieldError(err.field as EnvironmentField, err.message, err.line);
      return;
    }
    this._showGeneral(`Not saved: ${messageOf(err)}`);
  }

  private readonly _api: CattyAPI;
  private readonly _uid: string;
  private readonly _saved = new Signal<this, IEnvironment>(this);
  private _name: string;
  private _exists = false;
  private _readOnly = false;
  private _saving = false;
  private _filling = false;
  private _agentsLoaded = false;
  private readonly _slots = new Map<EnvironmentField, ISlot>();
  private readonly _title: HTMLElement;
  private readonly _error: HTMLElement;
  private readonly _readOnlyNote: HTMLElement;
  private readonly _status: HTMLElement;
  private readonly _inputs: {
    name: HTMLInputElement;
    description: HTMLInputElement;
    agent: HTMLInputElement;
    cpus: HTMLInputElement;
    memory: HTMLInputElement;
    disk: HTMLInputElement;
    secrets: HTMLInputElement;
  };
  private readonly _agents: HTMLDataListElement;
  private readonly _network: HTMLSelectElement;
  private readonly _domains: HTMLTextAreaElement;
  private readonly _includeDefaults: HTMLInputElement;
  private readonly _env: HTMLTextAreaElement;
  private readonly _networkHelp: HTMLElement;
  private readonly _variablesNote: HTMLElement;
  private readonly _nameRow: HTMLElement;
  private readonly _saveButton: HTMLButtonElement;
  private readonly _scriptControl: HTMLElement;
  private _scriptModel: CodeEditor.Model | null = null;
  private _scriptEditor: CodeEditor.IEditor | null = null;
  private _scriptText: HTMLTextAreaElement | null = null;
}

/** Select line LINE (from 1) of TEXTAREA and scroll it into view. */
function selectLine(textarea: HTMLTextAreaElement, line: number): void {
  const lines = textarea.value.split('\n');
  if (line < 1 || line > lines.length) {
    return;
  }
  let start = 0;
  for (let i = 0; i < line - 1; i++) {
    start += lines[i].length + 1;
  }
  textarea.setSelectionRange(start, start + lines[line - 1].length);
  const height = textarea.scrollHeight / Math.max(lines.length, 1);
  textarea.scrollTop = Math.max(0, (line - 2) * height);
}
