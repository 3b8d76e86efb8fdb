/**
 * The shapes the catty REST API sends (see `catty/v1/openapi.yaml`).
 */

/** One transcript event. */
export interface IEvent {
  seq: number;
  kind: string;
  payload: Record<string, any>;
  ts: number;
  client: string | null;
}

/** Who holds input focus. */
export interface IFocus {
  holder: string | null;
  connected?: boolean;
  expires?: number | null;
}

/** `+added -removed` over the files changed. */
export interface IDiffstat {
  files_changed: number;
  added: number;
  removed: number;
}

/** A session as the list shows it. */
export interface ISession {
  id: string;
  label: string;
  owner: string;
  agent: string;
  environment: string;
  state: 'starting' | 'running' | 'stopped' | 'failed' | 'expired';
  activity: 'idle' | 'busy' | 'waiting' | null;
  created: number;
  last_activity: number;
  branch: string;
  base_commit: string | null;
  source: string | null;
  archived: boolean;
  error: string | null;
  sandboxed: boolean;
  diffstat: IDiffstat | null;
  focus?: IFocus;
}

/** A permission request waiting for an answer. */
export interface IPermissionRequest {
  request_id: string;
  tool_name?: string;
  input?: unknown;
  [key: string]: unknown;
}

/** One session with what only its own page needs. */
export interface ISessionDetail extends ISession {
  focus: IFocus;
  pending_permissions: IPermissionRequest[];
}

/** One file of a diff. */
export interface IFileDiff {
  path: string;
  old_path: string | null;
  status: string;
  added: number;
  removed: number;
  binary: boolean;
  patch: string;
  notebook_diff: string | null;
}

/** A session's changes against its base. */
export interface IDiff extends IDiffstat {
  base: string | null;
  files: IFileDiff[];
  truncated: boolean;
}

/** A review comment waiting for the next message. */
export interface IComment {
  id: string;
  path: string;
  line: number;
  side: 'new' | 'old';
  text: string;
  line_text: string | null;
  client: string | null;
  created: number;
}

/** An environment sessions start in. */
export interface IEnvironment {
  name: string;
  description: string;
  agent: string;
  network: string;
  allowed_domains: string[];
  include_defaults: boolean;
  env: string;
  variables: { name: string; secret: boolean }[];
  secrets: string[];
  setup_script: string;
  resources: { cpus: number | null; memory: number | null; disk: number | null };
  read_only: boolean;
  updated: number;
}

/** An agent the server can run. */
export interface IAgent {
  name: string;
}

/** What teleporting a session needs. */
export interface ITeleportInfo {
  label: string;
  agent: string;
  branch: string;
  base_commit: string | null;
  /** The repository the session was copied from, on the server (null: none). */
  source: string | null;
  origin: { kind?: string; [key: string]: unknown };
  state: string;
}
