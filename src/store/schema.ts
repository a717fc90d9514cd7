import type { ColumnType, Generated } from 'kysely';
import type { XmlObject } from '../xml/tree.js';

/** Table types, one interface per table in `sql/`. Rows never leave `src/store`. */
export interface Database {
  apps: AppsTable;
  queues: QueuesTable;
  jobs: JobsTable;
  templates: TemplatesTable;
  callback_deliveries: CallbackDeliveriesTable;
  callback_attempts: CallbackAttemptsTable;
  service_settings: { name: string; value: string };
  workers: WorkersTable;
  schema_migrations: SchemaMigrationsTable;
}

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export interface AppsTable {
  app_id: string;
  name: string;
  secret_id: string;
  secret_key: string;
  app_key: string;
  created_at: Timestamp;
  /** CI's APPID and the app's own bucket (sql/0010); NULL only until the first start sets the first app's. */
  appid: string | null;
  bucket: string | null;
  disabled_at: NullableTimestamp;
  updated_at: Timestamp;
  app_key_sha256: Buffer;
}

/** A worker as last seen (sql/0010): ours heartbeat, external ones are seen on every task-API call. */
export interface WorkersTable {
  worker_key: string;
  worker_id: string;
  kind: 'internal' | 'external';
  app_id: string | null;
  host: string | null;
  pid: number | null;
  task_types: ColumnType<string[], string[] | undefined, string[]>;
  concurrency: number | null;
  started_at: Timestamp;
  last_seen_at: Timestamp;
}

export interface NotifyConfig {
  Url?: string;
  Event?: string;
  Type?: string;
  State?: string;
  ResultFormat?: string;
}

export interface QueuesTable {
  queue_id: string;
  bucket: string;
  name: string;
  state: ColumnType<'Active' | 'Paused', 'Active' | 'Paused' | undefined, 'Active' | 'Paused'>;
  category: ColumnType<string, string | undefined, string>;
  max_size: ColumnType<number, number | undefined, number>;
  max_concurrent: ColumnType<number, number | undefined, number>;
  notify_config: ColumnType<NotifyConfig | null, string | null | undefined, string | null>;
  /** Running jobs; maintained by claim() and a trigger (sql/0004). */
  running: ColumnType<number, never, never>;
  is_default: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface JobsTable {
  seq: ColumnType<string, never, never>;
  job_id: string;
  bucket: string;
  region: string;
  queue_id: string;
  tag: string;
  state: ColumnType<string, string | undefined, string>;
  priority: number;
  input_object: string;
  operation: ColumnType<XmlObject, string, string>;
  result: ColumnType<XmlObject | null, string | null | undefined, string | null>;
  callback_url: string | null;
  callback_format: string | null;
  callback_type: string | null;
  code: ColumnType<string, string | undefined, string>;
  message: ColumnType<string, string | undefined, string>;
  progress: ColumnType<number, number | undefined, number>;
  attempts: ColumnType<number, number | undefined, number>;
  max_attempts: number;
  run_after: Timestamp;
  expires_at: Timestamp;
  lease_owner: string | null;
  lease_expires_at: NullableTimestamp;
  created_at: Timestamp;
  started_at: NullableTimestamp;
  ended_at: NullableTimestamp;
  updated_at: Timestamp;
  /** The bucket's APPID, generated from it (sql/0010). */
  appid: ColumnType<string | null, never, never>;
  /** Taken by external workers through the task API, never by ours. */
  external: ColumnType<boolean, boolean | undefined, boolean>;
  /** The task API's task_data and result, as given. */
  task_data: ColumnType<unknown, string | null | undefined, string | null>;
  task_result: ColumnType<unknown, string | null | undefined, string | null>;
  unique_key: string | null;
}

export interface SchemaMigrationsTable {
  name: string;
  applied_at: Generated<Date>;
}

export interface TemplatesTable {
  template_id: string;
  bucket: string;
  tag: string;
  name: string;
  body: ColumnType<XmlObject, string, string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface CallbackDeliveriesTable {
  delivery_id: string;
  job_id: string;
  url: string;
  format: 'XML' | 'JSON';
  body: string;
  content_type: string;
  state: ColumnType<'Pending' | 'Delivered' | 'GivenUp', 'Pending' | undefined, 'Pending' | 'Delivered' | 'GivenUp'>;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: Timestamp;
  window_started_at: Timestamp;
  lease_owner: string | null;
  lease_expires_at: NullableTimestamp;
  created_at: Timestamp;
  delivered_at: NullableTimestamp;
  updated_at: Timestamp;
}

export interface CallbackAttemptsTable {
  delivery_id: string;
  attempt: number;
  attempted_at: Timestamp;
  http_status: number | null;
  latency_ms: number;
  error: string | null;
}
