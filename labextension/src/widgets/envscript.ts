/**
 * The environment editor's setup script field: a CodeMirror editor with shell highlighting
 * when JupyterLab's editor services are given, a plain textarea without them.
 */

import { CodeEditor, IEditorServices } from '@jupyterlab/codeeditor';

import { h } from './dom';

/** Options of a setup script field. */
export interface IScriptFieldOptions {
  /** The control's id; its label's id is `ID-label`. */
  id: string;
  /** Makes the script a CodeMirror editor (a textarea without it). */
  editorServices?: IEditorServices;
  /** Called when the CodeMirror editor's text changes (a textarea's edits are input events). */
  changed: () => void;
}

/** The setup script: its control, its text, and what screen readers see of it. */
export class ScriptField {
  /** The element the field's row holds. */
  readonly control: HTMLElement;

  constructor(options: IScriptFieldOptions) {
    if (options.editorServices) {
      this.control = h('div', {
        class: 'catty-EnvEditor-script',
        attrs: { id: options.id }
      });
      this._model = new CodeEditor.Model({ mimeType: 'text/x-sh' });
      this._editor = options.editorServices.factoryService.newInlineEditor({
        host: this.control,
        model: this._model,
        config: { lineNumbers: true }
      });
      this._model.sharedModel.changed.connect(() => options.changed(), this);
      // CodeMirror's text box is not labelable: name it by the label's id instead.
      this.target().setAttribute('aria-labelledby', `${options.id}-label`);
    } else {
      this._text = h('textarea', {
        class: 'catty-EnvEditor-textarea catty-EnvEditor-code',
        attrs: {
          id: options.id,
          rows: 8,
          placeholder: '#!/bin/bash\npip install -e .',
          spellcheck: 'false',
          wrap: 'off'
        }
      });
      this.control = this._text;
    }
  }

  /** The script's text. */
  get value(): string {
    if (this._model) {
      return this._model.sharedModel.getSource();
    }
    return this._text?.value ?? '';
  }

  set value(value: string) {
    if (this._model) {
      this._model.sharedModel.setSource(value);
    } else if (this._text) {
      this._text.value = value;
    }
  }

  /** The element screen readers see as the text box (it gets aria-invalid / aria-describedby). */
  target(): HTMLElement {
    if (!this._editor) {
      return this.control;
    }
    const host = this._editor.host;
    return host.querySelector<HTMLElement>('.cm-content') ?? host;
  }

  /** Make a click on LABEL, the field's label, focus the editor (as a textarea's label does). */
  label(label: HTMLElement | null): void {
    if (this._editor) {
      // The label of a CodeMirror editor: name its text box, focus it on a click.
      label?.addEventListener('click', ev => {
        ev.preventDefault();
        this._editor?.focus();
      });
    }
  }

  /** Let the script be edited, or not. */
  setDisabled(disabled: boolean): void {
    if (this._text) {
      this._text.disabled = disabled;
    }
    this._editor?.setOption('readOnly', disabled);
    this.control.classList.toggle('catty-mod-disabled', disabled);
  }

  /** Put the cursor in the script. */
  focus(): void {
    if (this._editor) {
      this._editor.focus();
    } else {
      this.control.focus();
    }
  }

  /** Dispose of the CodeMirror editor and its model. */
  dispose(): void {
    this._editor?.dispose();
    this._model?.dispose();
  }

  private _model: CodeEditor.Model | null = null;
  private _editor: CodeEditor.IEditor | null = null;
  private _text: HTMLTextAreaElement | null = null;
}
