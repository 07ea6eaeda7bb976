-- Delivering the outbox to the forges: `result` is delivered, superseded (a newer state of
-- the same status was sent instead), unreported (no forge reporting for the repository),
-- refused or failed (given up); the others are still to be sent.
ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
ALTER TABLE outbox ADD COLUMN result TEXT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
CREATE INDEX IF NOT EXISTS outbox_undelivered ON outbox (id) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_status ON outbox (run_id, job_key, id);
