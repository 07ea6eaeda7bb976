-- Jobs a person starts: `gate` is `manual` (GitLab `when: manual` that may fail),
-- `manual-blocking` (`allow_failure: false`) or `approval:<environment>` (a protected
-- environment); `inputs` holds the job inputs it declares and `played` the values a play
-- gave (JSON), returned by the claim. Runs keep the commit's title, why the
-- planner started them and their pipeline version; schedules can be switched off.
ALTER TABLE jobs ADD COLUMN gate TEXT;
ALTER TABLE jobs ADD COLUMN played TEXT;
ALTER TABLE jobs ADD COLUMN inputs TEXT;
ALTER TABLE runs ADD COLUMN title TEXT;
ALTER TABLE runs ADD COLUMN reason TEXT;
ALTER TABLE runs ADD COLUMN version_id TEXT;
CREATE TABLE IF NOT EXISTS schedule_switches (
    scope TEXT NOT NULL,
    schedule TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (scope, schedule)
);
DROP FUNCTION tess_claim(TEXT, TEXT, BIGINT, BIGINT, TEXT);
CREATE FUNCTION tess_claim(p_runner TEXT, p_token TEXT, p_expires BIGINT, p_now BIGINT, p_labels TEXT) RETURNS TABLE (run_id TEXT, job_key TEXT, name TEXT, attempt BIGINT, spec TEXT, needs TEXT, queued_at BIGINT, played TEXT) LANGUAGE sql SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off AS $$ WITH picked AS (SELECT q.run_id, q.job_key FROM jobs q WHERE q.state = 'queued' AND lower(q.labels)::jsonb <@ p_labels::jsonb ORDER BY q.queued_at, q.position LIMIT 1 FOR UPDATE SKIP LOCKED) UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, runner_id = p_runner, lease_token = p_token, lease_expires = p_expires, started_at = p_now, log_length = 0 FROM picked WHERE j.run_id = picked.run_id AND j.job_key = picked.job_key AND j.state = 'queued' RETURNING j.run_id, j.job_key, j.name, j.attempt, j.spec, j.needs, j.queued_at, j.played $$;
