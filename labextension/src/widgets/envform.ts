/**
 * The environment editor's form logic, without the page: an environment as the form's text
 * fields, the form back as the body the environments API takes, and the server's refusals
 * mapped onto the fields.
 */

import type { IEnvironment } from '../types';

/** What API responses show instead of a secret's value (`core/environments.py` MASK). */
export const MASK = '********';

/** The network levels an environment can have. */
export const NETWORK_LEVELS = ['none', 'trusted', 'full', 'custom'] as const;

/** What each network level lets a session reach. */
export const NETWORK_HELP: Record<string, string> = {
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
export const LABELS: Record<EnvironmentField, string> = {
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

/** The form field a server error's FIELD names, or null when the form has no such field. */
export function fieldOf(field: string | null | undefined): EnvironmentField | null {
  return field && Object.prototype.hasOwnProperty.call(LABELS, field) ? (field as EnvironmentField) : null;
}

/** A server error MESSAGE about line LINE of a field, saying the line once. */
export function lineMessage(message: string, line: number | null): string {
  return line !== null && !new RegExp(`^line ${line}\\b`, 'i').test(message)
    ? `line ${line}: ${message}`
    : message;
}

/** The note under the variables: how the values of the SECRET variables show, and how to keep them. */
export function variablesNote(secret: string[]): string {
  return secret.length
    ? `The values of ${secret.join(', ')} are secret and shown as ${MASK}: leave ${MASK} in ` +
        'place to keep a stored value, or write a new value to replace it.'
    : `Secret values are shown as ${MASK}: leaving ${MASK} in place keeps the stored value.`;
}

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

/** The form of a new environment. */
export const EMPTY: IEnvironmentForm = {
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

/** The items of TEXT split at SEPARATOR, trimmed, blank ones dropped. */
export function listOf(text: string, separator: string): string[] {
  return text
    .split(separator)
    .map(item => item.trim())
    .filter(item => item);
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
    allowed_domains: listOf(form.allowed_domains, '\n'),
    include_defaults: form.include_defaults,
    env: form.env,
    secrets: listOf(form.secrets, ','),
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
