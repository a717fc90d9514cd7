/**
 * The payloads of the changes feed (sql/0012_changes_feed.sql), parsed. One
 * reader for both of its listeners: the console's event stream and the
 * metrics' counters.
 */

/** A job was created, or its state or progress changed. */
export interface JobChange {
  readonly kind: 'job';
  readonly jobId: string;
  readonly state: string;
  readonly progress: number;
  readonly tag: string;
  /** The APPID of its bucket; null for a bucket without one. */
  readonly appid: string | null;
  readonly external: boolean;
  /** On the change to Running: how long it had been runnable (claim latency). */
  readonly waitMs: number | null;
  /** On a final state: ended_at - started_at. */
  readonly runMs: number | null;
  readonly queueId: string;
  /** The row was inserted (no earlier state). */
  readonly created: boolean;
}

/** A callback delivery was recorded, attempted, given up or redelivered. */
export interface DeliveryChange {
  readonly kind: 'delivery';
  readonly deliveryId: string;
  readonly jobId: string;
  readonly state: 'Pending' | 'Delivered' | 'GivenUp';
  readonly attempts: number;
  readonly attemptsBefore: number;
}

/** A queue was paused, resumed or given another MaxConcurrent. */
export interface QueueChange {
  readonly kind: 'queue';
  readonly queueId: string;
  readonly state: string;
  readonly maxConcurrent: number;
}

export type Change = JobChange | DeliveryChange | QueueChange;

/**
 * Parses one payload; undefined for anything else (a payload of a later
 * version is ignored rather than thrown on: the feed is a hint).
 */
export function parseChange(payload: string): Change | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  const [kind, ...rest] = value as unknown[];
  if (kind === 'j' && typeof rest[0] === 'string') {
    const [jobId, state, progress, tag, appid, external, waitMs, runMs, queueId, created] = rest;
    return {
      kind: 'job',
      jobId,
      state: String(state),
      progress: Number(progress) || 0,
      tag: String(tag),
      appid: typeof appid === 'string' ? appid : null,
      external: external === true,
      waitMs: typeof waitMs === 'number' ? waitMs : null,
      runMs: typeof runMs === 'number' ? runMs : null,
      queueId: String(queueId),
      created: created === true,
    };
  }
  if (kind === 'd' && typeof rest[0] === 'string') {
    const [deliveryId, jobId, state, attempts, attemptsBefore] = rest;
    return { kind: 'delivery', deliveryId, jobId: String(jobId), state: state as DeliveryChange['state'], attempts: Number(attempts), attemptsBefore: Number(attemptsBefore) };
  }
  if (kind === 'q' && typeof rest[0] === 'string') {
    return { kind: 'queue', queueId: rest[0], state: String(rest[1]), maxConcurrent: Number(rest[2]) };
  }
  return undefined;
}
