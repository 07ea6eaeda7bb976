-- The queue on its own: claims walk it in order without sorting or skipping the table's
-- finished jobs, whatever the planner's statistics say.
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (queued_at, position) WHERE state = 'queued';
