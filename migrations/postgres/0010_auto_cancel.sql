-- GitLab `workflow:auto_cancel`: a running job asked to stop on its own (`on_new_commit:
-- interruptible`), and a run whose failed job cancels the rest (`on_job_failure: all`).
ALTER TABLE jobs ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;ALTER TABLE runs ADD COLUMN cancel_on_job_failure BIGINT NOT NULL DEFAULT 0;
