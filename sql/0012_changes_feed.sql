-- The changes feed (issue 19): every job created, every job state or
-- progress change, every callback delivery state or attempt change and every
-- queue state or MaxConcurrent change is sent on one NOTIFY channel,
-- `mediajobs_changes` (CHANNELS.changes in src/engine/channels.ts). The API
-- process LISTENs on it once (src/console/feed.ts) and fans it out to the
-- console's browsers over server-sent events, and /metrics counts jobs and
-- callback attempts from it (src/metrics/), whichever process made the
-- change: a worker-only process, the task API, a cancel, the reaper, expiry.
--
-- Triggers rather than a NOTIFY at each call site: the state of a job changes
-- in a dozen statements (claim, the batched ends riding on claims, retries,
-- reapers, expiry, cancel, pause, the task API), and a trigger cannot miss one.
-- The UPDATE triggers name their columns and carry a WHEN, so lease renewals,
-- the queues' running counts and every other update skip them without running
-- any PL/pgSQL. A transaction that notifies takes the notify queue's lock at
-- commit; jobs that become Submitted already notify (jobs_available), so what
-- this adds is that lock for claims and ends, and one queue entry per row.
--
-- Payloads are JSON arrays, first the kind:
--   ["j", job_id, state, progress, tag, appid, external, wait_ms, run_ms, queue_id, created]
--     wait_ms: on the change to Running, how long the job had been runnable
--     (claim latency); run_ms: on a final state, ended_at - started_at.
--   ["d", delivery_id, job_id, state, attempts, attempts_before]
--   ["q", queue_id, state, max_concurrent]
-- Payloads are hints for the console (it reads the rows again) and counts for
-- metrics; NOTIFY is best effort (lost while the LISTEN connection is down).

CREATE FUNCTION mediajobs_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('mediajobs_changes', json_build_array(
    'j', NEW.job_id, NEW.state, NEW.progress, left(NEW.tag, 64), NEW.appid, NEW.external,
    CASE WHEN NEW.state = 'Running' AND (TG_OP = 'INSERT' OR OLD.state <> 'Running')
      THEN round(extract(epoch FROM now() - greatest(NEW.created_at, NEW.run_after)) * 1000) END,
    CASE WHEN NEW.state IN ('Success', 'Failed', 'Cancel') AND NEW.started_at IS NOT NULL AND NEW.ended_at IS NOT NULL
      THEN round(extract(epoch FROM NEW.ended_at - NEW.started_at) * 1000) END,
    NEW.queue_id, TG_OP = 'INSERT')::text);
  RETURN NULL;
END $$;

CREATE TRIGGER jobs_changes_insert AFTER INSERT ON jobs
  FOR EACH ROW EXECUTE FUNCTION mediajobs_job_changed();
CREATE TRIGGER jobs_changes_update AFTER UPDATE OF state, progress ON jobs
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.progress IS DISTINCT FROM NEW.progress)
  EXECUTE FUNCTION mediajobs_job_changed();

CREATE FUNCTION mediajobs_delivery_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('mediajobs_changes', json_build_array(
    'd', NEW.delivery_id, NEW.job_id, NEW.state, NEW.attempts,
    CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE OLD.attempts END)::text);
  RETURN NULL;
END $$;

CREATE TRIGGER callback_deliveries_changes_insert AFTER INSERT ON callback_deliveries
  FOR EACH ROW EXECUTE FUNCTION mediajobs_delivery_changed();
CREATE TRIGGER callback_deliveries_changes_update AFTER UPDATE OF state, attempts ON callback_deliveries
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.attempts IS DISTINCT FROM NEW.attempts)
  EXECUTE FUNCTION mediajobs_delivery_changed();

CREATE FUNCTION mediajobs_queue_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('mediajobs_changes', json_build_array('q', NEW.queue_id, NEW.state, NEW.max_concurrent)::text);
  RETURN NULL;
END $$;

CREATE TRIGGER queues_changes_update AFTER UPDATE OF state, max_concurrent ON queues
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.max_concurrent IS DISTINCT FROM NEW.max_concurrent)
  EXECUTE FUNCTION mediajobs_queue_changed();
