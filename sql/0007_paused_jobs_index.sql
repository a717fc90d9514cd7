-- Jobs in Pause, by queue: lets every worker's maintenance pass find jobs left
-- in Pause in a queue that is Active (a submission that read the queue as
-- Paused and committed after a resume had moved that queue's jobs) without
-- reading the queue's whole backlog. Tiny: only paused jobs are in it.
CREATE INDEX jobs_paused ON jobs (queue_id) WHERE state = 'Pause';
