-- A worker that finds its queue at MaxConcurrent stops claiming and would wait
-- for its next poll (a second by default) once a slot frees up. When a job
-- leaving Running takes a full queue below MaxConcurrent, wake the workers at
-- once; the notification is sent when the transaction commits, so the slot is
-- free by the time they claim. (A worker that ends a job and claims the next
-- in one statement takes the slot back before this runs: no wake-up then.)
-- The channel is CHANNELS.jobsAvailable (src/engine/channels.ts).
CREATE OR REPLACE FUNCTION jobs_release_queue_slot() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  freed_last_slot boolean;
BEGIN
  UPDATE queues SET running = running - 1 WHERE queue_id = OLD.queue_id
    RETURNING running < max_concurrent AND running + 1 >= max_concurrent INTO freed_last_slot;
  IF freed_last_slot THEN
    PERFORM pg_notify('mediajobs_jobs_available', '');
  END IF;
  RETURN NULL;
END
$$;
