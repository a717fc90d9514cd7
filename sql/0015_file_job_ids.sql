-- CI's file jobs (/file_jobs: FileHashCode, FileCompress, FileUncompress) have
-- ids starting with `f` (`f9640f1b0874211edb47e5fa2d6bd5e47` in the Go SDK's
-- ci_fileprocess_test.go); every other job's starts with `j`. The constraint
-- keeps its name (PostgreSQL's default for 0001's inline CHECK).
ALTER TABLE jobs DROP CONSTRAINT jobs_job_id_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_job_id_check CHECK (job_id ~ '^[jf][0-9a-f]{32}$');
