/**
 * The side panel: every session with its state, focus holder, environment, age and diffstat;
 * a filter, an order, archived sessions on request, and the *New session* button.
 */

import { Widget } from '@lumino/widgets';

import { SessionsModel, SortKey, statusOf } from '../model';
import type { ISession } from '../types';
import { age, button, h } from './dom';

/** What the panel asks of the application. */
export interface ISessionsPanelActions {
  /** Open a session in the main area. */
  open(label: string): void;
  /** Show the *New session* dialog. */
  create(): void;
  /** Open the environment editor. */
  environments(): void;
}

/** The list of sessions. */
export class SessionsPanel extends Widget {
  constructor(
    readonly model: SessionsModel,
    private readonly _actions: ISessionsPanelActions,
    /** This tab's client id: its own focus shows as "you". */
    private readonly _client = ''
  ) {
    super();
    this.addClass('catty-SessionsPanel');
    this.id = 'catty-sessions';
    this.title.caption = 'Agent sessions';

    this._filter = h('input', {
      class: 'catty-SessionsPanel-filter jp-mod-styled',
      attrs: { type: 'search', placeholder: 'Filter sessions', 'aria-label': 'Filter sessions' }
    });
    this._filter.addEventListener('input', () => (this.model.filter = this._filter.value));
    this._sort = h(
      'select',
      { class: 'catty-SessionsPanel-sort jp-mod-styled', attrs: { 'aria-label': 'Sort sessions by' } },
      ...(
        [
          ['recent', 'Recent activity'],
          ['created', 'Newest'],
          ['status', 'State'],
          ['label', 'Label']
        ] as [SortKey, string][]
      ).map(([value, text]) => h('option', { text, attrs: { value } }))
    );
    this._sort.addEventListener('change', () => (this.model.sort = this._sort.value as SortKey));
    this._archived = h('input', { attrs: { type: 'checkbox', id: 'catty-show-archived' } });
    this._archived.addEventListener('change', () => (this.model.showArchived = this._archived.checked));
    this._list = h('ul', { class: 'catty-SessionsPanel-list', attrs: { 'aria-label': 'Sessions' } });
    this._empty = h('p', { class: 'catty-SessionsPanel-empty' });

    this.node.append(
      h(
        'header',
        { class: 'catty-SessionsPanel-header' },
        h('h2', { text: 'Agent sessions' }),
        button('+ New session', () => this._actions.create(), {
          class: 'catty-NewSession jp-mod-accept',
          title: 'Start an agent on a copy of a repository'
        }),
        button('Environments', () => this._actions.environments(), {
          title: 'Create and edit the environments sessions start in'
        })
      ),
      h(
        'div',
        { class: 'catty-SessionsPanel-controls' },
        this._filter,
        this._sort,
        h('label', { class: 'catty-SessionsPanel-archived', attrs: { for: 'catty-show-archived' } },
          this._archived, ' archived')
      ),
      this._empty,
      this._list
    );
    this.model.changed.connect(() => this.update(), this);
  }

  protected onUpdateRequest(): void {
    const sessions = this.model.visible;
    const now = Date.now();
    const rows = sessions.map(s => this._row(s, now));
    this._list.replaceChildren(...rows);
    this._empty.textContent = this.model.error
      ? `The sessions could not be listed: ${this.model.error}`
      : !this.model.loaded
        ? 'Loading sessions…'
        : sessions.length
          ? ''
          : this.model.all.length
            ? 'No session matches the filter.'
            : 'No sessions yet. Start one with “New session”.';
    this._empty.hidden = !this._empty.textContent;
    this._empty.classList.toggle('catty-mod-error', !!this.model.error);
  }

  protected onAfterShow(): void {
    void this.model.refresh();
  }

  private _row(s: ISession, now: number): HTMLElement {
    const status = statusOf(s);
    const stat = s.diffstat;
    // Focus matters only while the session runs; a stopped one keeps its last holder.
    const live = s.state === 'running' || s.state === 'starting';
    const holder = live ? s.focus?.holder : null;
    const who = holder && holder === this._client ? 'you' : holder;
    const parts = [
      h('span', { class: 'catty-Status', text: status, attrs: { 'data-status': status } }),
      h('span', { class: 'catty-Row-label', text: s.label }),
      stat && stat.files_changed
        ? h(
            'span',
            { class: 'catty-Diffstat', title: `${stat.files_changed} files changed` },
            h('span', { class: 'catty-Added', text: `+${stat.added}` }),
            ' ',
            h('span', { class: 'catty-Removed', text: `−${stat.removed}` })
          )
        : null,
      h(
        'div',
        { class: 'catty-Row-meta' },
        h('span', { text: s.environment, title: 'Environment' }),
        h('span', { text: s.agent, title: 'Agent' }),
        holder ? h('span', { class: 'catty-Row-holder', text: `⌨ ${who}`, title: `${holder} holds input focus` }) : null,
        h('span', { text: age(s.last_activity, now), title: `Last active ${new Date(s.last_activity * 1000).toLocaleString()}` }),
        s.archived ? h('span', { class: 'catty-Row-archived', text: 'archived' }) : null
      )
    ];
    const open = h(
      'button',
      {
        class: 'catty-Row',
        attrs: {
          type: 'button',
          'data-label': s.label,
          'aria-label': `${s.label}, ${status}, ${s.environment}${holder ? `, ${who} ${who === 'you' ? 'have' : 'has'} control` : ''}${
            stat ? `, ${stat.files_changed} files changed` : ''
          }`
        }
      },
      ...parts
    );
    open.addEventListener('click', () => this._actions.open(s.label));
    return h('li', { attrs: { 'data-status': status } }, open);
  }

  private _filter: HTMLInputElement;
  private _sort: HTMLSelectElement;
  private _archived: HTMLInputElement;
  private _list: HTMLElement;
  private _empty: HTMLElement;
}
