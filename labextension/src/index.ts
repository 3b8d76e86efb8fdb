/**
 * The catty-jupyter JupyterLab extension: a side panel of agent sessions, a tab per session
 * (live transcript, focus, approvals, actions), a diff tab with line comments, an environment
 * editor, commands in the palette, notifications and settings.
 */

import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  Notification,
  WidgetTracker
} from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { Widget } from '@lumino/widgets';

import { CattyAPI } from './api';
import { clientId } from './client';
import { SessionModel, SessionsModel } from './model';
import { catIcon } from './icon';
import { ServerTransport } from './transport';
import { newSession, teleport } from './dialogs';
import { DiffView } from './widgets/diffview';
import { EnvironmentEditor } from './widgets/envedit';
import { EnvironmentList } from './widgets/envlist';
import { SessionView } from './widgets/sessionview';
import { SessionsPanel } from './widgets/sidepanel';

const PLUGIN_ID = 'catty-jupyter:plugin';

/** The extension's command ids. */
export namespace CommandIDs {
  export const newSession = 'catty:new-session';
  export const openSession = 'catty:open-session';
  export const openDiff = 'catty:open-diff';
  export const environments = 'catty:environments';
  export const editEnvironment = 'catty:edit-environment';
  export const refresh = 'catty:refresh-sessions';
  export const showPanel = 'catty:show-panel';
  export const teleport = 'catty:teleport';
}

/** The extension's settings (see schema/plugin.json). */
interface ISettings {
  defaultEnvironment: string;
  defaultAgent: string;
  panelSide: 'left' | 'right';
  notifyWaiting: boolean;
  notifyFinished: boolean;
  pollInterval: number;
}

const DEFAULTS: ISettings = {
  defaultEnvironment: 'default',
  defaultAgent: '',
  panelSide: 'left',
  notifyWaiting: true,
  notifyFinished: true,
  pollInterval: 3000
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Agent sessions: side panel, live transcripts, review and environments.',
  autoStart: true,
  optional: [
    ICommandPalette,
    ILayoutRestorer,
    IRenderMimeRegistry,
    ISettingRegistry,
    IDefaultFileBrowser,
    IEditorServices,
    ILabShell
  ],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    rendermime: IRenderMimeRegistry | null,
    settingRegistry: ISettingRegistry | null,
    fileBrowser: IDefaultFileBrowser | null,
    editorServices: IEditorServices | null,
    labShell: ILabShell | null
  ) => {
    const api = new CattyAPI(new ServerTransport());
    const client = clientId();
    let settings: ISettings = { ...DEFAULTS };
    const sessions = new SessionsModel(api, {
      pollInterval: settings.pollInterval,
      liveUpdates: true
    });
    const { commands, shell } = app;

    const panel = new SessionsPanel(
      sessions,
      {
        open: label => void commands.execute(CommandIDs.openSession, { label }),
        create: () => void commands.execute(CommandIDs.newSession),
        environments: () => void commands.execute(CommandIDs.environments)
      },
      client
    );
    panel.title.icon = catIcon;
    shell.add(panel, settings.panelSide, { rank: 600 });
    restorer?.add(panel, 'catty-sessions');
    sessions.start();

    const views = new WidgetTracker<MainAreaWidget<SessionView>>({ namespace: 'catty-session' });
    const diffs = new WidgetTracker<MainAreaWidget<DiffView>>({ namespace: 'catty-diff' });
    const envs = new WidgetTracker<MainAreaWidget<Widget>>({ namespace: 'catty-environment' });
    restorer?.restore(views, {
      command: CommandIDs.openSession,
      args: w => ({ label: w.content.model.label }),
      name: w => w.content.model.label
    });
    restorer?.restore(diffs, {
      command: CommandIDs.openDiff,
      args: w => ({ label: w.content.label }),
      name: w => w.content.label
    });

    /** Put CONTENT in a closable main-area tab with ID and LABEL, tracked by TRACKER, and show it. */
    const addTab = async <T extends Widget>(
      tracker: WidgetTracker<MainAreaWidget<T>>,
      content: T,
      id: string,
      label: string
    ): Promise<MainAreaWidget<T>> => {
      const widget = new MainAreaWidget<T>({ content });
      widget.id = id;
      widget.title.label = label;
      widget.title.icon = catIcon;
      widget.title.closable = true;
      shell.add(widget, 'main');
      await tracker.add(widget);
      shell.activateById(widget.id);
      return widget;
    };

    const find = <T extends Widget>(tracker: WidgetTracker<MainAreaWidget<T>>, test: (w: T) => boolean) =>
      tracker.find(w => test(w.content));

    commands.addCommand(CommandIDs.openSession, {
      label: args => (args.label ? `Open Agent Session ${args.label}` : 'Open Agent Session'),
      caption: "Open a session's live transcript",
      execute: async args => {
        const label = String(args.label ?? '');
        if (!label) {
          return;
        }
        const open = find(views, v => v.model.label === label);
        if (open) {
          shell.activateById(open.id);
          return open;
        }
        const model = new SessionModel(api, label, client);
        const view = new SessionView({
          model,
          rendermime,
          actions: {
            openDiff: l => void commands.execute(CommandIDs.openDiff, { label: l }),
            teleport: l => void commands.execute(CommandIDs.teleport, { label: l })
          }
        });
        const widget = await addTab(views, view, `catty-session-${label}`, label);
        await view.open();
        return widget;
      }
    });

    commands.addCommand(CommandIDs.openDiff, {
      label: args => (args.label ? `Review Changes of ${args.label}` : 'Review Session Changes'),
      caption: "A session's diff, with comments on lines",
      execute: async args => {
        const label = String(args.label ?? '');
        if (!label) {
          return;
        }
        const open = find(diffs, d => d.label === label);
        if (open) {
          shell.activateById(open.id);
          await open.content.refresh();
          return open;
        }
        const view = new DiffView({ api, label, client });
        const widget = await addTab(diffs, view, `catty-diff-${label}`, `Diff: ${label}`);
        await view.refresh();
        return widget;
      }
    });

    commands.addCommand(CommandIDs.newSession, {
      label: 'New Agent Session…',
      caption: 'Start an agent on a copy of a repository',
      icon: args => (args.isPalette ? undefined : catIcon),
      execute: () =>
        newSession(
          api,
          client,
          { environment: settings.defaultEnvironment, agent: settings.defaultAgent },
          fileBrowser,
          label => {
            void sessions.refresh();
            void commands.execute(CommandIDs.openSession, { label });
          }
        )
    });

    commands.addCommand(CommandIDs.environments, {
      label: 'Agent Environments',
      caption: 'Create and edit the environments sessions start in',
      execute: async () => {
        const open = envs.find(w => w.content instanceof EnvironmentList);
        if (open) {
          shell.activateById(open.id);
          await (open.content as EnvironmentList).refresh();
          return;
        }
        const list = new EnvironmentList(api, name =>
          void commands.execute(CommandIDs.editEnvironment, name ? { name } : {})
        );
        await addTab<Widget>(envs, list, 'catty-environments', 'Environments');
        await list.refresh();
      }
    });

    commands.addCommand(CommandIDs.editEnvironment, {
      label: args => (args.name ? `Edit Environment ${args.name}` : 'New Agent Environment…'),
      caption: 'Network, variables, setup script and resources of an environment',
      execute: async args => {
        const name = args.name ? String(args.name) : undefined;
        const editor = new EnvironmentEditor({ api, name, editorServices: editorServices ?? undefined });
        const widget = await addTab<Widget>(
          envs,
          editor,
          `catty-env-${name ?? `new-${Date.now()}`}`,
          name ? `Environment: ${name}` : 'New environment'
        );
        editor.saved.connect((_, env) => {
          widget.title.label = `Environment: ${env.name}`;
          const list = envs.find(w => w.content instanceof EnvironmentList);
          void (list?.content as EnvironmentList | undefined)?.refresh();
        });
        await editor.load();
      }
    });

    commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Agent Sessions',
      execute: () => sessions.refresh()
    });

    commands.addCommand(CommandIDs.showPanel, {
      label: 'Show Agent Sessions',
      execute: () => shell.activateById(panel.id)
    });

    commands.addCommand(CommandIDs.teleport, {
      label: args => (args.label ? `Teleport ${args.label}` : 'Teleport Agent Session'),
      caption: "Bring a session's branch and conversation into your checkout",
      execute: args => teleport(app, api, String(args.label ?? ''))
    });

    for (const command of [
      CommandIDs.newSession,
      CommandIDs.showPanel,
      CommandIDs.refresh,
      CommandIDs.environments,
      CommandIDs.editEnvironment
    ]) {
      palette?.addItem({ command, category: 'Agent Sessions' });
    }

    // A finished turn the user is looking at needs no toast.
    const onScreen = (label: string) =>
      document.visibilityState === 'visible' && shell.currentWidget?.id === `catty-session-${label}`;
    sessions.attention.connect((_, { session, kind }) => {
      const open = {
        label: 'Open',
        caption: `Open ${session.label}`,
        callback: () => void commands.execute(CommandIDs.openSession, { label: session.label })
      };
      if (kind === 'waiting' && settings.notifyWaiting) {
        Notification.warning(`${session.label} is waiting for a permission answer`, {
          autoClose: false,
          actions: [open]
        });
      } else if (kind === 'finished' && settings.notifyFinished && !onScreen(session.label)) {
        Notification.info(`${session.label} finished its turn`, { autoClose: 6000, actions: [open] });
      } else if (kind === 'failed') {
        Notification.error(`${session.label} failed${session.error ? `: ${session.error}` : ''}`, {
          autoClose: false,
          actions: [open]
        });
      }
    });

    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_ID).then(
        loaded => {
          const apply = () => {
            const before = settings.panelSide;
            settings = { ...DEFAULTS, ...(loaded.composite as Partial<ISettings>) };
            sessions.interval = settings.pollInterval;
            if (settings.panelSide !== before && labShell) {
              labShell.add(panel, settings.panelSide, { rank: 600 });
            }
          };
          apply();
          loaded.changed.connect(apply);
        },
        err => console.warn('catty-jupyter: settings could not be loaded', err)
      );
    }
  }
};

export default plugin;
