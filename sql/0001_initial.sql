-- Apps, queues and jobs: the ground the API and the engine stand on.
-- Runs on PostgreSQL 15 and later. Forward-only: never edit a
-- migration after it has shipped; add the next number instead.

-- An app owns a key pair (COS signatures) and a task-API key, and the buckets it uses.
CREATE TABLE apps (
  app_id      text PRIMARY KEY,
  name        text NOT NULL,
  secret_id   text NOT NULL UNIQUE,
  secret_key  text NOT NULL,
  app_key     text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE queues (
  queue_id        text PRIMARY KEY CHECK (queue_id ~ '^p[0-9a-f]{32}$'),
  bucket          text NOT NULL,
  name            text NOT NULL,
  state           text NOT NULL DEFAULT 'Active' CHECK (state IN ('Active', 'Paused')),
  category        text NOT NULL DEFAULT 'Transcoding',
  max_size        integer NOT NULL DEFAULT 10000 CHECK (max_size > 0),
  -- Enforced across every worker by claim(): it locks the queue row while counting.
  max_concurrent  integer NOT NULL DEFAULT 10 CHECK (max_concurrent > 0),
  -- CI's NotifyConfig as given (Url, Event, Type, State, ResultFormat); json keeps element order.
  notify_config   json,
  is_default      boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Each bucket's default queue is created on first use; two API processes racing to create it meet here.
CREATE UNIQUE INDEX queues_one_default_per_bucket ON queues (bucket) WHERE is_default;
CREATE INDEX queues_bucket ON queues (bucket, created_at);

CREATE TABLE jobs (
  -- Creation order. Listing pages and FIFO claiming use it instead of
  -- created_at, which ties for the jobs of one multi-Operation request.
  seq               bigserial NOT NULL UNIQUE,
  job_id            text PRIMARY KEY CHECK (job_id ~ '^j[0-9a-f]{32}$'),
  bucket            text NOT NULL,
  region            text NOT NULL,
  queue_id          text NOT NULL REFERENCES queues (queue_id),
  tag               text NOT NULL,
  -- CI's state names; transitions are written down in src/engine/job-state.ts.
  state             text NOT NULL DEFAULT 'Submitted'
                    CHECK (state IN ('Submitted', 'Running', 'Success', 'Failed', 'Pause', 'Cancel')),
  -- JobLevel: higher runs sooner.
  priority          smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 2),
  input_object      text NOT NULL,
  -- The request's Operation as echoed in JobsDetail (json, not jsonb: element order matters).
  operation         json NOT NULL,
  -- Result elements added to Operation when the job succeeds (MediaInfo, PicProcessResult, ...).
  result            json,
  callback_url      text,
  callback_format   text CHECK (callback_format IN ('XML', 'JSON')),
  callback_type     text,
  code              text NOT NULL DEFAULT 'Success',
  message           text NOT NULL DEFAULT '',
  progress          smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
  attempts          integer NOT NULL DEFAULT 0,
  max_attempts      integer NOT NULL CHECK (max_attempts > 0),
  -- Not claimable before this (retry backoff).
  run_after         timestamptz NOT NULL DEFAULT now(),
  -- A job not started by then ends Failed (MEDIAJOBS_JOB_TTL).
  expires_at        timestamptz NOT NULL,
  lease_owner       text,
  lease_expires_at  timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  ended_at          timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CHECK ((state = 'Running') = (lease_owner IS NOT NULL))
);

-- DescribeMediaJobs: every listing is "this bucket [and queue] [and tag], by seq".
CREATE INDEX jobs_list_by_tag ON jobs (bucket, tag, seq);
CREATE INDEX jobs_list_by_queue ON jobs (bucket, queue_id, seq);
CREATE INDEX jobs_list_by_input ON jobs (bucket, input_object, seq);
-- claim(): runnable jobs in priority-then-age order; partial, so it stays small however many jobs have ended.
CREATE INDEX jobs_claimable ON jobs (priority DESC, seq) WHERE state = 'Submitted';
-- MaxConcurrent counting and lease reaping only look at running jobs.
CREATE INDEX jobs_running ON jobs (queue_id, lease_expires_at) WHERE state = 'Running';
-- Queue pause/resume and expiry walk waiting jobs only.
CREATE INDEX jobs_waiting ON jobs (queue_id, seq) WHERE state IN ('Submitted', 'Pause');
CREATE INDEX jobs_expiring ON jobs (expires_at) WHERE state IN ('Submitted', 'Pause');
