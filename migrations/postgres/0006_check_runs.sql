-- Annotations for check runs, and the check run made for each run and job (`''` for the run)
-- so later states update it.
ALTER TABLE jobs ADD COLUMN annotations TEXT;
CREATE TABLE IF NOT EXISTS check_runs (
    run_id TEXT NOT NULL,
    job_key TEXT NOT NULL,
    check_run_id BIGINT NOT NULL,
    PRIMARY KEY (run_id, job_key)
);
