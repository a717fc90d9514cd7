-- The callback outbox. A job's TaskFinish notification is written here in the
-- same transaction that ends the job, so no job ends without its callback on
-- the way; senders in any process deliver from here, at least once.

CREATE TABLE callback_deliveries (
  -- Sent as X-Mediajobs-Delivery-Id on every attempt, so receivers can drop duplicates.
  delivery_id       text PRIMARY KEY,
  job_id            text NOT NULL REFERENCES jobs (job_id),
  url               text NOT NULL,
  format            text NOT NULL CHECK (format IN ('XML', 'JSON')),
  -- Rendered when the job ended, by the same builder as GET /jobs/<id>.
  body              text NOT NULL,
  content_type      text NOT NULL,
  state             text NOT NULL DEFAULT 'Pending' CHECK (state IN ('Pending', 'Delivered', 'GivenUp')),
  attempts          integer NOT NULL DEFAULT 0,
  next_attempt_at   timestamptz NOT NULL DEFAULT now(),
  -- Start of the retry window (MEDIAJOBS_CALLBACK_RETRY_FOR); reset by a manual redelivery.
  window_started_at timestamptz NOT NULL DEFAULT now(),
  -- A sender holds a delivery while it attempts it; an expired lease lets another sender take over.
  lease_owner       text,
  lease_expires_at  timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  delivered_at      timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX callback_deliveries_due ON callback_deliveries (next_attempt_at) WHERE state = 'Pending';
CREATE INDEX callback_deliveries_by_job ON callback_deliveries (job_id, created_at);

-- Every attempt, kept: when, what the receiver said, how long it took.
CREATE TABLE callback_attempts (
  delivery_id   text NOT NULL REFERENCES callback_deliveries (delivery_id),
  attempt       integer NOT NULL,
  attempted_at  timestamptz NOT NULL DEFAULT now(),
  http_status   integer,
  latency_ms    integer NOT NULL,
  error         text,
  PRIMARY KEY (delivery_id, attempt)
);

-- Service-wide values generated once, shared by every process.
CREATE TABLE service_settings (
  name   text PRIMARY KEY,
  value  text NOT NULL
);
-- Signs callbacks (X-Mediajobs-Signature) unless MEDIAJOBS_CALLBACK_SECRET overrides it.
INSERT INTO service_settings (name, value)
VALUES ('callback_secret', md5(random()::text || clock_timestamp()::text) || md5(clock_timestamp()::text || random()::text));
