/**
 * The environment editor: create or change an environment. The server validates it; a refused
 * field shows the server's message beside it (a malformed `.env` line names its line).
 *
 * Secret values arrive masked (`********`) and stay masked: sending the mask back keeps the
 * stored value. Names, values and messages go into the page as text only, never as markup.
 */

import type { IEditorServices } from '@jupyterlab/codeeditor';
import type { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { CattyAPI, CattyRequestError } from '../api';
import type { IEnvironment } from '../types';
import { button, h, messageOf } from './dom';
import { EditorMode, EnvironmentFields } from './envfields';
import {
  EMPTY,
  EnvironmentField,
  IEnvironmentForm,
  LABELS,
  bodyOf,
  fieldOf,
  formOf,
  variablesNote
} from './envform';

/** Options of an environment editor. */
export interface IEnvironmentEditorOptions {
  api: CattyAPI;
  /** The environment to edit; none: a new one. */
  name?: string;
  /** Makes the setup script a CodeMirror editor (a textarea without it). */
  editorServices?: IEditorServices;
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

    this._title = h('h2', { class: 'catty-EnvEditor-title', attrs: { id: `${this._uid}-title` } });
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
    this._fields = new EnvironmentFields({
      uid: this._uid,
      editorServices: options.editorServices,
      edited: () => this._edited()
    });

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
    form.append(...this._fields.rows);
    this._saveButton = h('button', {
      class: 'jp-Button catty-Button jp-mod-accept catty-EnvEditor-save',
      text: 'Save',
      attrs: { type: 'submit' }
    });
    form.append(h('div', { class: 'catty-EnvEditor-actions' }, this._saveButton, this._status));

    this.node.append(this._title, this._readOnlyNote, this._error, form);
    this._fields.fill(EMPTY);
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
    const values = this._fields.values;
    return this._exists ? { ...values, name: this._name } : values;
  }

  /** Show the environment as the server has it (a name not found starts a new one). */
  async load(): Promise<void> {
    this._clearErrors();
    this._say('');
    void this._loadAgents();
    if (!this._name) {
      this._fields.fill(EMPTY);
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
        this._fields.fill({ ...EMPTY, name });
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
    this._fields.dispose();
    Signal.clearData(this);
    super.dispose();
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    if (!this.node.contains(document.activeElement)) {
      (
        this._fields.firstControl(this._exists) ??
        this.node.querySelector<HTMLElement>('input, select, textarea')
      )?.focus();
    }
  }

  // ---- state --------------------------------------------------------------------------------

  /** Show ENV as the server returned it. */
  private _show(env: IEnvironment): void {
    this._exists = true;
    this._name = env.name;
    this._readOnly = !!env.read_only;
    this._fields.fill(formOf(env));
    const secret = (env.variables ?? []).filter(v => v.secret).map(v => v.name);
    this._fields.setVariablesNote(variablesNote(secret));
    this._setMode(this._readOnly ? 'readonly' : 'edit');
  }

  private _setMode(mode: EditorMode): void {
    this.node.dataset.mode = mode;
    this._title.textContent = mode === 'new' ? 'New environment' : `Environment ${this._name}`;
    if (mode === 'new') {
      this._fields.setVariablesNote(variablesNote([]));
    }
    this._fields.setMode(mode);
    const disabled = mode === 'loading' || mode === 'readonly';
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

  /** Something was typed: the last "Saved" no longer describes the form. */
  private _edited(): void {
    if (this._status.classList.contains('catty-mod-success')) {
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
      this._fields.setAgents(agents.map(a => a.name));
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
    this._fields.clearErrors();
  }

  /** MESSAGE beside FIELD (and a pointer to it at the top); the field gets focus. */
  private _fieldError(field: EnvironmentField, message: string, line: number | null = null): void {
    this._showGeneral(`Not saved: see ${LABELS[field]}.`);
    this._fields.showError(field, message, line);
  }

  private _showRefusal(err: unknown): void {
    if (err instanceof CattyRequestError) {
      const field = fieldOf(err.field);
      if (field) {
        this._fieldError(field, err.message, err.line);
        return;
      }
    }
    this._showGeneral(`Not saved: ${messageOf(err)}`);
  }

  private readonly _api: CattyAPI;
  private readonly _uid: string;
  private readonly _saved = new Signal<this, IEnvironment>(this);
  private readonly _fields: EnvironmentFields;
  private _name: string;
  private _exists = false;
  private _readOnly = false;
  private _saving = false;
  private _agentsLoaded = false;
  private readonly _title: HTMLElement;
  private readonly _error: HTMLElement;
  private readonly _readOnlyNote: HTMLElement;
  private readonly _status: HTMLElement;
  private readonly _saveButton: HTMLButtonElement;
}
