/**
 * The environments sessions start in, each with its network level and a button to edit it.
 */

import { Widget } from '@lumino/widgets';

import type { CattyAPI } from '../api';
import { button, h, messageOf } from './dom';

/** The list of environments. */
export class EnvironmentList extends Widget {
  constructor(
    private readonly _api: CattyAPI,
    /** Open the editor on an environment (none: a new one). */
    private readonly _edit: (name?: string) => void
  ) {
    super();
    this.addClass('catty-EnvironmentList');
    this._list = h('ul', { attrs: { 'aria-label': 'Environments' } });
    this._notice = h('p', { class: 'catty-Notice', attrs: { role: 'status' }, text: 'Loading…' });
    this.node.append(
      h(
        'header',
        {},
        h('h2', { text: 'Environments' }),
        button('+ New environment', () => this._edit(), { class: 'jp-mod-accept' }),
        button('Refresh', () => void this.refresh())
      ),
      this._notice,
      this._list
    );
  }

  /** Fetch the environments again. */
  async refresh(): Promise<void> {
    try {
      const environments = await this._api.environments();
      this._notice.textContent = '';
      this._list.replaceChildren(
        ...environments.map(env =>
          h(
            'li',
            { attrs: { 'data-name': env.name } },
            h('strong', { text: env.name }),
            h('span', { class: 'catty-EnvironmentList-meta', text: [
              `network ${env.network}`,
              env.agent,
              env.read_only ? 'set by the administrator' : '',
              env.description
            ].filter(Boolean).join(' · ') }),
            button(env.read_only ? 'View' : 'Edit', () => this._edit(env.name), {
              aria: `${env.read_only ? 'View' : 'Edit'} environment ${env.name}`
            })
          )
        )
      );
    } catch (err) {
      this._notice.textContent = `The environments could not be listed: ${messageOf(err)}`;
    }
  }

  private _list: HTMLElement;
  private _notice: HTMLElement;
}
