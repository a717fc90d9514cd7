-- MaxConcurrent, enforced exactly. Counting Running jobs inside the claim
-- statement is not enough: a claimer that waited for another's lock still
-- counts with the snapshot its statement started with, and both take the
-- last slot. A counter on the queue row is re-checked by UPDATE against the
-- newest row version after the wait, so the second claimer sees the slot gone.
--
-- claim() increments `running` in the statement that makes a job Running (the
-- only way into Running); this trigger decrements it whenever a job leaves
-- Running, whichever code path moves it (success, failure, cancel, reaper,
-- retry, shutdown hand-back).
ALTER TABLE queues ADD COLUMN running integer NOT NULL DEFAULT 0 CHECK (running >= 0);

UPDATE queues SET running = (SELECT count(*) FROM jobs WHERE jobs.queue_id = queues.queue_id AND jobs.state = 'Running');

CREATE FUNCTION jobs_release_queue_slot() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE queues SET running = running - 1 WHERE queue_id = OLD.queue_id;
  RETURN NULL;
END
$$;

CREATE TRIGGER jobs_release_queue_slot
  AFTER UPDATE OF state ON jobs
  FOR EACH ROW
  WHEN (OLD.state = 'Running' AND NEW.state <> 'Running')
  EXECUTE FUNCTION jobs_release_queue_slot();
