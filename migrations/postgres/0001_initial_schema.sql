
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    forge TEXT NOT NULL,
    event TEXT NOT NULL,
    repo TEXT,
    received_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    runs TEXT,
    payload TEXT NOT NULL,
    claimed_at BIGINT
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    forge TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    file TEXT NOT NULL,
    event TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    sha TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    event_json TEXT NOT NULL,
    delivery_id TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    concurrency_group TEXT
);
CREATE INDEX IF NOT EXISTS runs_group ON runs (concurrency_group, status);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL,
    job_key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    needs TEXT NOT NULL,
    labels TEXT NOT NULL,
    has_condition BIGINT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt BIGINT NOT NULL DEFAULT 0,
    runner_id TEXT,
    lease_token TEXT,
    lease_expires BIGINT,
    log_length BIGINT NOT NULL DEFAULT 0,
    allowed_failure BIGINT NOT NULL DEFAULT 0,
    interruptible BIGINT NOT NULL DEFAULT 0,
    outputs TEXT,
    error TEXT,
    queued_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (run_id, job_key)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, queued_at, position);
CREATE INDEX IF NOT EXISTS jobs_run_state ON jobs (run_id, state);
CREATE TABLE IF NOT EXISTS logs (
    run_id TEXT NOT NULL,
    job_key TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    start_at BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, job_key, attempt, start_at)
);
CREATE TABLE IF NOT EXISTS runners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    labels TEXT NOT NULL,
    version TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    free_slots BIGINT NOT NULL DEFAULT 0,
    load TEXT,
    draining BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    job_key TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
