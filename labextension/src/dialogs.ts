/**
 * The extension's dialogs: *New session* (prompt, environment, agent, repository) and
 * *Teleport* (the command, and running it in a JupyterLab terminal).
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { Clipboard, Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { Widget } from '@lumino/widgets';

import type { CattyAPI } from './api';
import type { ITeleportInfo } from './types';
import { shellQuote } from './text';
import { h, messageOf } from './widgets/dom';
import { INewSessionDefaults, NewSessionForm } from './widgets/newsession';

/** Ask for a new session's prompt, environment, agent and source; start it. */
export async function newSession(
  api: CattyAPI,
  client: string,
  defaults: { environment: string; agent: string },
  fileBrowser: IDefaultFileBrowser | null,
  opened: (label: string) => void
): Promise<void> {
  let formDefaults: INewSessionDefaults = {
    environment: defaults.environment,
    agent: defaults.agent,
    folder: fileBrowser?.model.path ? `/${fileBrowser.model.path}` : '/'
  };
  let environments, agents;
  try {
    [environments, agents] = await Promise.all([api.environments(), api.agents()]);
  } catch (err) {
    Notification.error(`Sessions cannot be started: ${messageOf(err)}`);
    return;
  }
  // A refused form comes back with what was typed and the server's message.
  for (;;) {
    const form = new NewSessionForm(environments, agents, formDefaults);
    const result = await showDialog({
      title: 'New agent session',
      body: form,
      focusNodeSelector: 'textarea',
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Start session' })]
    });
    if (!result.button.accept) {
      return;
    }
    const value = form.getValue();
    try {
      const session = await api.createSession({
        prompt: value.prompt,
        environment: value.environment,
        agent: value.agent,
        repo: value.repo,
        client
      });
      opened(session.label);
      return;
    } catch (err) {
      formDefaults = {
        prompt: value.prompt,
        environment: value.environment,
        agent: value.agent,
        folder: value.folder,
        empty: value.empty,
        error: `The session could not be started: ${messageOf(err)}`
      };
    }
  }
}

/** Show how to teleport LABEL, and offer to run it in a terminal. */
export async function teleport(app: JupyterFrontEnd, api: CattyAPI, label: string): Promise<void> {
  if (!label) {
    return;
  }
  let info: ITeleportInfo;
  try {
    info = await api.teleportInfo(label);
  } catch (err) {
    Notification.error(`Teleport: ${messageOf(err)}`);
    return;
  }
  const { source } = info;
  const kind = info.origin.kind ?? 'unknown';
  const command = `jupyter catty teleport ${shellQuote(label)}`;
  const full = source ? `cd ${shellQuote(source)} && ${command}` : command;
  const body = h(
    'div',
    { class: 'catty-Teleport' },
    h('p', {
      text:
        kind === 'empty'
          ? 'This session started from an empty workspace: there is no checkout to bring it into. Download it instead.'
          : "Teleport checks the session's branch out in your checkout (stashing nothing unless asked), " +
            'saves its transcript beside it and installs the agent’s conversation so you can resume it there.'
    }),
    h('pre', { class: 'catty-Teleport-command', text: full }),
    h('p', {
      class: 'catty-Field-hint',
      text: 'Run it in the checkout on the machine you work on; with uncommitted changes add --stash.'
    })
  );
  const result = await showDialog({
    title: `Teleport ${label}`,
    body: new Widget({ node: body }),
    buttons: [
      Dialog.cancelButton({ label: 'Close' }),
      Dialog.createButton({ label: 'Copy command', actions: ['copy'] }),
      ...(kind === 'empty' ? [] : [Dialog.okButton({ label: 'Run in a terminal' })])
    ]
  });
  if (result.button.actions.includes('copy')) {
    Clipboard.copyToSystem(full);
    return;
  }
  if (!result.button.accept) {
    return;
  }
  try {
    const terminal: any = await app.commands.execute('terminal:create-new');
    const session = terminal?.content?.session;
    for (let i = 0; i < 50 && session && session.connectionStatus !== 'connected'; i++) {
      await new Promise(resolve => setTimeout(resolve, 100));
    }
    session?.send({ type: 'stdin', content: [`${full}\n`] });
  } catch (err) {
    Notification.error(`No terminal could be opened: ${messageOf(err)}. Run: ${full}`);
  }
}
