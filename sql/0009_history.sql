-- History that stays fast (issue 15, item 4): finished jobs are deleted after
-- MEDIAJOBS_RETENTION by the workers' maintenance (src/engine/retention.ts),
-- and the tables that take an update per job are vacuumed early.

-- Retention: the oldest finished jobs first. Partial, so jobs still waiting or
-- running are not in it; a pass with nothing to delete is one probe at the
-- low end. Without it, finding "ended before the cutoff" read the whole table
-- (or the seq index from the start) at every maintenance pass.
CREATE INDEX jobs_ended ON jobs (ended_at) WHERE ended_at IS NOT NULL;

-- DescribeMediaJobs needs no other new index: every listing walks
-- jobs_seq_key or a jobs_list_by_* index and stops after a page, whatever
-- the history holds (bench/scale.ts, bench/README.md). (bucket, seq) and
-- (bucket, state, seq) were tried and left out: the planner never picked
-- the first, and the second only for states=Submitted, which the partial
-- jobs_expiring serves as fast; and each index on jobs is one more entry
-- written by every claim and every end (a state change is never HOT).

-- A creation-time window is listed in (created_at, seq) order from here
-- (src/store/jobs.repository.ts): walking seq and filtering on created_at
-- read every job between the newest and the window (25 ms with 100,000
-- jobs behind it, against 0.6 ms now).
CREATE INDEX jobs_by_created ON jobs (bucket, created_at, seq);

-- Autovacuum. The defaults vacuum a table once 20 % of its rows are dead
-- (50 + 0.2 × rows): with a million jobs kept, that is 200,000 dead versions
-- before the first pass, and until then every claim walks the dead entries
-- of jobs_queue_head (each claim and each end leaves one) and every retention
-- batch leaves its deleted rows behind. A threshold that does not grow with
-- the history keeps the dead versions to a few thousand whatever the table
-- holds: vacuum after 5,000 dead rows (+ 0.5 %), analyze after 10,000 changes
-- (+ 1 %) so the planner's idea of the queue's size stays current. No cost
-- delay: a pass over the jobs table is short (mostly index pages the queue
-- just touched) and a delayed one lets dead versions pile up while it sleeps.
-- Inserts alone (a burst of submissions) also trigger a pass, which sets the
-- visibility map that index-only scans and the next vacuum rely on.
ALTER TABLE jobs SET (
  autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_scale_factor = 0.005,
  autovacuum_vacuum_insert_threshold = 10000,
  autovacuum_vacuum_insert_scale_factor = 0.01,
  autovacuum_analyze_threshold = 10000,
  autovacuum_analyze_scale_factor = 0.01,
  autovacuum_vacuum_cost_delay = 0
);

-- A queue row is updated by every claim and every end (its `running` count):
-- a handful of rows taking thousands of updates a second. The default
-- threshold (50 dead) is fine; room on each page keeps those updates HOT
-- (no index entry per update), and no cost delay keeps the pass instant.
ALTER TABLE queues SET (fillfactor = 50, autovacuum_vacuum_cost_delay = 0);

-- The outbox: one insert per callback and an update per attempt; deleted
-- with its jobs by retention. Same reasoning as jobs, smaller numbers.
ALTER TABLE callback_deliveries SET (
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_analyze_threshold = 1000,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE callback_attempts SET (
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_cost_delay = 0
);
