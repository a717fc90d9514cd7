-- Each attempt of a job, with its worker (issue 19: the console's timeline
-- shows "created, each attempt with its worker, progress, end"). The jobs row
-- keeps only the last attempt (attempts, lease_owner, started_at of the first
-- start, ended_at of the end), so every run is recorded here as it happens.
--
-- Written by a trigger on jobs rather than by the engine's statements: a job
-- enters and leaves Running in a dozen statements (claims, the ends batched
-- with claims, the task API's claims and ends, retries, both reapers,
-- graceful release, cancel), as 0012 says of the changes feed, and a trigger
-- misses none of them. Like 0012's, it names its column and carries a WHEN:
-- it runs only when a job enters or leaves Running, so lease renewals,
-- progress, lock keys, pause/resume and every other update skip it without
-- running any PL/pgSQL. A claim changes attempts and state together; attempts
-- only changes with a move into or out of Running.
--
-- Rows:
--   entering Running: attempt = jobs.attempts (the claim's attempts + 1),
--     worker = lease_owner (our workerId host:pid:random, or an external
--     worker's name), started_at = now() (the claim's own now()), state
--     'Running'.
--   leaving Running: the open row of the attempt gets ended_at = now() and
--     state = the job's final state (Success, Failed, Cancel) with its code
--     and message; 'Retry' when the job went back to its queue counting the
--     attempt (a transient failure, a lease that ran out, a dead worker;
--     message says why, code is NULL: the jobs row keeps its old code);
--     'Released' when it went back with the attempt given back (graceful
--     shutdown, or claimed ahead by a worker that died before starting it).
--     A Released attempt's number is used again by the next claim, which
--     overwrites that row.
-- Rows go with their job: ON DELETE CASCADE, so retention
-- (src/engine/retention.ts) deletes them with the job, through the primary
-- key's index.

CREATE TABLE job_attempts (
  job_id      text NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  attempt     integer NOT NULL,
  worker      text,
  started_at  timestamptz NOT NULL,
  ended_at    timestamptz,
  state       text NOT NULL CHECK (state IN ('Running', 'Success', 'Failed', 'Cancel', 'Retry', 'Released')),
  code        text,
  message     text,
  PRIMARY KEY (job_id, attempt)
) WITH (fillfactor = 70);
-- fillfactor: an attempt's row is updated once, when it ends, soon after its
-- insert; room left on its page lets that update be HOT (no new index entry).

CREATE FUNCTION mediajobs_job_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state = 'Running' THEN
    INSERT INTO job_attempts (job_id, attempt, worker, started_at, state)
    VALUES (NEW.job_id, NEW.attempts, NEW.lease_owner, now(), 'Running')
    ON CONFLICT (job_id, attempt) DO UPDATE
      SET worker = EXCLUDED.worker, started_at = EXCLUDED.started_at, ended_at = NULL, state = 'Running', code = NULL, message = NULL;
  ELSE
    UPDATE job_attempts SET
      ended_at = now(),
      state = CASE WHEN NEW.state <> 'Submitted' THEN NEW.state
                   WHEN NEW.attempts < OLD.attempts THEN 'Released'
                   ELSE 'Retry' END,
      code = CASE WHEN NEW.state <> 'Submitted' THEN NEW.code END,
      message = NEW.message
    WHERE job_id = OLD.job_id AND attempt = OLD.attempts AND ended_at IS NULL;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER jobs_attempts_update AFTER UPDATE OF state ON jobs
  FOR EACH ROW WHEN ((OLD.state = 'Running') <> (NEW.state = 'Running'))
  EXECUTE FUNCTION mediajobs_job_attempt();
