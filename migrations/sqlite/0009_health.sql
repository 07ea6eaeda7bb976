-- One row `/readyz` writes: ready means a write commits, not just that a read answers.
CREATE TABLE IF NOT EXISTS tess_health (id BIGINT PRIMARY KEY, checked_at BIGINT NOT NULL);
