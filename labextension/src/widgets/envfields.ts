/**
 * The environment editor's fields: each control with its label, help text and error slot,
 * filled from and read into an `IEnvironmentForm`. The setup script is a CodeMirror editor
 * when the editor services are given, a textarea without them.
 *
 * Values and messages go into the page as text only, never as markup.
 */

import type { IEditorServices } from '@jupyterlab/codeeditor';

import { h } from './dom';
import {
  EnvironmentField,
  IEnvironmentForm,
  LABELS,
  MASK,
  NETWORK_HELP,
  NETWORK_LEVELS,
  lineMessage
} from './envform';
import { ScriptField } from './envscript';

/** What the editor is doing: the fields follow it (the name is typed only for a new one). */
export type EditorMode = 'new' | 'loading' | 'edit' | 'readonly';

/** Options of an editor's fields. */
export interface IEnvironmentFieldsOptions {
  /** The editor's id prefix: a field's control is `UID-FIELD`, its label `UID-FIELD-label`. */
  uid: string;
  /** Makes the setup script a CodeMirror editor (a textarea without it). */
  editorServices?: IEditorServices;
  /** Called when the text of the setup script's CodeMirror editor changes, except by `fill()`. */
  edited: () => void;
}

/** A field's error slot and the control it describes. */
interface ISlot {
  slot: HTMLElement;
  /** The element that gets aria-invalid / aria-describedby. */
  control: () => HTMLElement;
  /** What aria-describedby holds without the error (the help text). */
  help: string;
}

/** An environment's fields, as rows of a form. */
export class EnvironmentFields {
  /** The rows, in the order the form shows them. */
  readonly rows: HTMLElement[];

  constructor(options: IEnvironmentFieldsOptions) {
    this._uid = options.uid;
    const id = (field: string) => `${this._uid}-${field}`;

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
    this._script = new ScriptField({
      id: id('setup_script'),
      editorServices: options.editorServices,
      changed: () => {
        if (!this._filling) {
          options.edited();
        }
      }
    });

    this._variablesNote = h('span', { class: 'catty-EnvEditor-secretsNote' });
    this._networkHelp = h('span', {});

    // Layout
    this._nameRow = this._row('name', this._inputs.name, [
      'Lower-case letters, digits, -, _ and ., starting with a letter or digit (at most 63).'
    ]);
    const scriptRow = this._row('setup_script', this._script.control, [
      'A bash script run before the agent starts, when the session is sandboxed.'
    ]);
    this.rows = [
      this._nameRow,
      this._row('description', this._inputs.description),
      this._row('agent', this._inputs.agent, ['The agent sessions run, e.g. claude.'], this._agents),
      this._row('network', this._network, [this._networkHelp]),
      this._row('allowed_domains', this._domains, [
        'Hosts sessions may reach with the custom level, one per line: pypi.org or *.example.com.'
      ]),
      this._checkboxRow(),
      this._row('env', this._env, ['KEY=value, one per line; # starts a comment. ', this._variablesNote]),
      this._row('secrets', this._inputs.secrets, [
        'Variables whose values are never shown back (they come back as ',
        h('code', { text: MASK }),
        ').'
      ]),
      scriptRow,
      this._resources()
    ];

    this._script.label(scriptRow.querySelector<HTMLElement>(`#${this._uid}-setup_script-label`));
    this._network.addEventListener('change', () => this._showNetworkHelp());
  }

  /** The fields' current values (the name as typed, trimmed). */
  get values(): IEnvironmentForm {
    return {
      name: this._inputs.name.value.trim(),
      description: this._inputs.description.value,
      agent: this._inputs.agent.value,
      network: this._network.value,
      allowed_domains: this._domains.value,
      include_defaults: this._includeDefaults.checked,
      env: this._env.value,
      secrets: this._inputs.secrets.value,
      setup_script: this._script.value,
      cpus: this._inputs.cpus.value,
      memory: this._inputs.memory.value,
      disk: this._inputs.disk.value
    };
  }

  /** Show FORM (a network level the editor does not know shows as `full`). */
  fill(form: IEnvironmentForm): void {
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
      this._script.value = form.setup_script;
      this._inputs.cpus.value = form.cpus;
      this._inputs.memory.value = form.memory;
      this._inputs.disk.value = form.disk;
    } finally {
      this._filling = false;
    }
    this._showNetworkHelp();
  }

  /** Offer NAMES in the agent field's list. */
  setAgents(names: string[]): void {
    this._agents.replaceChildren(...names.map(name => h('option', { attrs: { value: name } })));
  }

  /** The note under the variables about secret values. */
  setVariablesNote(text: string): void {
    this._variablesNote.textContent = text;
  }

  /** Let the fields be typed in as MODE allows. */
  setMode(mode: EditorMode): void {
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
    this._script.setDisabled(disabled);
  }

  /** The control to focus first: a new environment's name, else the description (null: disabled). */
  firstControl(exists: boolean): HTMLElement | null {
    const first = exists ? this._inputs.description : this._inputs.name;
    return first.disabled ? null : first;
  }

  /** Take every field's error away. */
  clearErrors(): void {
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

  /** MESSAGE beside FIELD (about its line LINE, when given); the field gets focus. */
  showError(field: EnvironmentField, message: string, line: number | null = null): void {
    const entry = this._slots.get(field)!;
    entry.slot.textContent = lineMessage(message, line);
    entry.slot.hidden = false;
    const target = entry.control();
    target.setAttribute('aria-invalid', 'true');
    target.setAttribute('aria-describedby', `${entry.help} ${entry.slot.id}`.trim());
    if (field === 'setup_script') {
      this._script.focus();
    } else if (field === 'resources') {
      this._inputs.cpus.focus();
    } else {
      target.focus();
    }
    if (line !== null && target instanceof HTMLTextAreaElement) {
      selectLine(target, line);
    }
  }

  /** Dispose of the setup script's editor. */
  dispose(): void {
    this._script.dispose();
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
    const target = field === 'setup_script' ? () => this._script.target() : () => control;
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

  // ---- state --------------------------------------------------------------------------------

  private _showNetworkHelp(): void {
    this._networkHelp.textContent = NETWORK_HELP[this._network.value] ?? '';
  }

  private readonly _uid: string;
  private _filling = false;
  private readonly _slots = new Map<EnvironmentField, ISlot>();
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
  private readonly _script: ScriptField;
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
