/**
 * The environment editor's form logic: sizes as the editor writes them, the body Save sends,
 * secrets kept masked, and the server's refusals put beside the right field.
 */

import type { IEnvironment } from '../types';
import {
  EMPTY,
  IEnvironmentForm,
  MASK,
  bodyOf,
  fieldOf,
  formOf,
  formatSize,
  lineMessage,
  variablesNote
} from '../widgets/envform';

const K = 2 ** 10;
const M = 2 ** 20;
const G = 2 ** 30;
const T = 2 ** 40;

/** Bytes from a size as the server reads it (`core/environments.py` `parse_size`). */
function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(text);
  if (!match) {
    throw new Error(`not a size: ${text}`);
  }
  const units: Record<string, number> = { '': 1, k: K, m: M, g: G, t: T };
  return Math.trunc(parseFloat(match[1]) * units[match[2].toLowerCase()]);
}

function environment(more: Partial<IEnvironment> = {}): IEnvironment {
  return {
    name: 'web',
    description: 'The web app',
    agent: 'claude',
    network: 'custom',
    allowed_domains: ['pypi.org', '*.example.com'],
    include_defaults: true,
    env: `DEBUG=1\nTOKEN=${MASK}\n`,
    variables: [
      { name: 'DEBUG', secret: false },
      { name: 'TOKEN', secret: true }
    ],
    secrets: ['TOKEN'],
    setup_script: 'pip install -e .\n',
    resources: { cpus: 2, memory: 4 * G, disk: 1.5 * G },
    read_only: false,
    updated: 1000,
    ...more
  };
}

describe('formatSize', () => {
  test('writes 2G, 512M and 1.5G, which the server reads back as the same bytes', () => {
    for (const [bytes, text] of [
      [2 * G, '2G'],
      [512 * M, '512M'],
      [1.5 * G, '1.5G'],
      [T, '1T'],
      [64 * K, '64K']
    ] as const) {
      expect(formatSize(bytes)).toBe(text);
      expect(parseSize(formatSize(bytes))).toBe(bytes);
    }
  });

  test('a size no unit writes exactly is not rounded: saving it back keeps it', () => {
    // 1.25G would show as 1.3G (one decimal) and save back as 1.3G: written in M instead.
    expect(formatSize(1.25 * G)).toBe('1280M');
    // One byte over 1G: no unit writes it, so it stays bytes.
    expect(formatSize(G + 1)).toBe(String(G + 1));
    expect(formatSize(1000)).toBe('1000');
    for (const bytes of [1.25 * G, G + 1, 1000, 3 * G + 7 * M]) {
      expect(parseSize(formatSize(bytes))).toBe(bytes);
    }
  });

  test('no limit shows as an empty field', () => {
    expect([formatSize(null), formatSize(undefined), formatSize(0)]).toEqual(['', '', '']);
  });
});

describe('bodyOf', () => {
  test('sends domains one per line and secrets comma-separated as lists, sizes as typed', () => {
    const form: IEnvironmentForm = {
      ...EMPTY,
      name: 'web',
      agent: ' codex ',
      network: 'custom',
      allowed_domains: 'pypi.org\n\n  *.example.com  \n\n',
      secrets: 'TOKEN, API_KEY,,',
      cpus: ' 2 ',
      memory: '512M',
      disk: ''
    };
    const body = bodyOf(form);
    expect(body.allowed_domains).toEqual(['pypi.org', '*.example.com']);
    expect(body.secrets).toEqual(['TOKEN', 'API_KEY']);
    // The server reads sizes and says what is wrong with them; an empty one is no limit.
    expect(body.resources).toEqual({ cpus: '2', memory: '512M', disk: null });
    expect(body.agent).toBe('codex');
    expect(body.network).toBe('custom');
    // The name is in the URL (update) or added by the editor (create), not in the body.
    expect(body).not.toHaveProperty('name');
  });

  test('an empty agent is left out, so the server keeps its default', () => {
    expect(bodyOf({ ...EMPTY, agent: '  ' })).not.toHaveProperty('agent');
  });

  test('an environment opened and saved unchanged sends back what it had', () => {
    const env = environment();
    const body = bodyOf(formOf(env));
    expect(body.allowed_domains).toEqual(env.allowed_domains);
    expect(body.include_defaults).toBe(true);
    expect(body.setup_script).toBe(env.setup_script);
    const resources = body.resources as Record<string, string>;
    expect(resources.cpus).toBe('2');
    expect(parseSize(resources.memory)).toBe(4 * G);
    expect(parseSize(resources.disk)).toBe(1.5 * G);
  });

  test('a secret value is sent back as the mask, unchanged, so the server keeps it', () => {
    const form = formOf(environment());
    expect(form.secrets).toBe('TOKEN');
    const body = bodyOf(form);
    expect(body.env).toBe(`DEBUG=1\nTOKEN=${MASK}\n`);
    expect(body.secrets).toEqual(['TOKEN']);
    expect(variablesNote(['TOKEN'])).toContain(`TOKEN are secret and shown as ${MASK}`);
  });
});

describe('refusals', () => {
  test("the server's field names the form field; others go to the top", () => {
    expect(fieldOf('env')).toBe('env');
    expect(fieldOf('resources')).toBe('resources');
    expect(fieldOf('allowed_domains')).toBe('allowed_domains');
    expect([fieldOf('options'), fieldOf('body'), fieldOf('toString'), fieldOf(null)]).toEqual([
      null,
      null,
      null,
      null
    ]);
  });

  test('a refused .env line is named once', () => {
    expect(lineMessage('TOKEN: not KEY=value', 3)).toBe('line 3: TOKEN: not KEY=value');
    expect(lineMessage('line 3: not KEY=value', 3)).toBe('line 3: not KEY=value');
    expect(lineMessage('name is taken', null)).toBe('name is taken');
  });
});
