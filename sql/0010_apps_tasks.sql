-- Apps are tenants, and the task API of issue 16 is a second front door to the
-- same jobs table (src/tasks/). A task is a job row: its task_id is the row's
-- seq, its status is read from the CI state (src/tasks/task-view.ts).

-- An app's APPID is the number its buckets end with (`<name>-<APPID>`, as in
-- CI); a signed request may address only buckets of its app's APPID. `bucket`
-- is the app's own bucket: where its tasks go, and the bucket of its signed
-- requests whose Host names none. The first app's are set at start from
-- MEDIAJOBS_DEFAULT_BUCKET (src/auth/credentials.ts), so both stay NULL here.
ALTER TABLE apps
  ADD COLUMN appid text UNIQUE CHECK (appid ~ '^[0-9]{1,12}$'),
  ADD COLUMN bucket text,
  ADD COLUMN disabled_at timestamptz,
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
  -- The task API finds an app by the SHA-256 of its app_key (written by the
  -- code with the key), never by the key itself: an index walk comparing the
  -- key byte by byte would leak how much of a guessed key is right. The key
  -- is then compared in constant time.
  ADD COLUMN app_key_sha256 bytea;
UPDATE apps SET app_key_sha256 = sha256(convert_to(app_key, 'UTF8'));
ALTER TABLE apps ALTER COLUMN app_key_sha256 SET NOT NULL;
CREATE UNIQUE INDEX apps_by_app_key_sha256 ON apps (app_key_sha256);

ALTER TABLE jobs
  -- The owning app's APPID, from the bucket: what the task API filters on.
  ADD COLUMN appid text GENERATED ALWAYS AS (substring(bucket from '-([0-9]+)$')) STORED,
  -- Run by an external worker through get_next_task, never claimed by ours:
  -- a task type that is not a Tag this build runs, or a Tag named in
  -- MEDIAJOBS_EXTERNAL_TAGS. Decided when the row is written.
  ADD COLUMN external boolean NOT NULL DEFAULT false,
  -- create_task's task_data and complete_task's result, as given (any JSON).
  ADD COLUMN task_data json,
  ADD COLUMN task_result json,
  -- create_task's unique_key: one unfinished task per app and key.
  ADD COLUMN unique_key text;

-- Task priorities are 1–10 (higher first); CI's JobLevel stays 0–2 (its schema checks that).
ALTER TABLE jobs DROP CONSTRAINT jobs_priority_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_priority_check CHECK (priority BETWEEN 0 AND 10);

-- Our workers' claim reads queue heads without external rows (claimStatement
-- says `NOT j.external`), so a backlog of external tasks never lies in the
-- way of the jobs our workers run.
CREATE INDEX jobs_queue_head_internal ON jobs (queue_id, priority DESC, seq) WHERE state = 'Submitted' AND NOT external;
DROP INDEX jobs_queue_head;
-- get_next_task: an app's best waiting external task (priority, then age).
CREATE INDEX jobs_task_head ON jobs (appid, priority DESC, seq) WHERE state = 'Submitted' AND external;
-- list_tasks: an app's rows, keyset-paged on seq.
CREATE INDEX jobs_by_appid ON jobs (appid, seq);
-- unique_key holds while the task is not final; create_task inserts ON CONFLICT against it.
CREATE UNIQUE INDEX jobs_unique_key ON jobs (appid, unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('Submitted', 'Running', 'Pause');

-- Every worker, ours and external, as last seen (GET /admin/workers). What a
-- worker runs is read from the jobs it holds (lease_owner), not stored here.
CREATE TABLE workers (
  -- Ours: their workerId (host:pid:random). External: '<app_id>/<worker_id>'.
  worker_key    text PRIMARY KEY,
  worker_id     text NOT NULL,
  kind          text NOT NULL CHECK (kind IN ('internal', 'external')),
  app_id        text REFERENCES apps (app_id),
  host          text,
  pid           integer,
  task_types    text[] NOT NULL DEFAULT '{}',
  concurrency   integer,
  started_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now()
);
