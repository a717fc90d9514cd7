-- Recovery in seconds, not leases (issue 20, item 5).
--
-- Worker liveness. Each worker holds a session-level advisory lock,
-- pg_advisory_lock(1835691874, lock_key), on a connection of its own for as
-- long as it lives (src/engine/liveness.ts). The server releases it the moment
-- that connection ends, kill -9 included, so any worker that can take the lock
-- (pg_try_advisory_xact_lock) knows the owner is gone and takes its jobs back
-- at once instead of waiting for their lease (sql is in src/engine/queue.sql.ts,
-- `reapDeadWorkersJobs`). Keys come from a sequence, never from a hash of the
-- worker id: a key reused by a live worker would hide a dead one's jobs until
-- their lease ran out. A worker whose lock connection is lost takes a new key.
-- 1835691874 is 'mjob' in ASCII, the two-int key space's namespace.
CREATE SEQUENCE worker_lock_keys AS integer MINVALUE 1 CYCLE;

-- The lock key of the worker running the job (with lease_owner, its id); NULL
-- for jobs claimed by workers of an older version or on PGlite (one process,
-- nothing to detect): those are taken back when their lease runs out.
ALTER TABLE jobs ADD COLUMN lock_key integer;

-- Callbacks after an outage: when a delivery to a receiver succeeds, the
-- sender makes due at once a few of the deliveries waiting (in backoff) for the
-- same origin (src/callbacks/sender.ts). The origin of a URL, as the sender and
-- this index compute it: scheme://host[:port], lower-cased.
CREATE FUNCTION callback_origin(url text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN lower(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*'));

CREATE INDEX callback_deliveries_pending_by_origin
  ON callback_deliveries (callback_origin(url), next_attempt_at) WHERE state = 'Pending';
