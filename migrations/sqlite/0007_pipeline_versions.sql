-- Pipeline versions per scope (`server`, `<forge>:<repo>`): their definitions, the history
-- of what was applied or rejected, and the current one (compare-and-set on `generation`);
-- `detected` is the newest version the source showed, so a rollback (`pinned`) lasts until
-- the source changes again.
CREATE TABLE IF NOT EXISTS versions (
    scope TEXT NOT NULL,
    version_id TEXT NOT NULL,
    definitions TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, version_id)
);
CREATE TABLE IF NOT EXISTS version_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    version_id TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    commit_sha TEXT,
    previous TEXT,
    at BIGINT NOT NULL,
    change_log TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS version_history_scope ON version_history (scope, id);
CREATE TABLE IF NOT EXISTS current_versions (
    scope TEXT PRIMARY KEY,
    version_id TEXT NOT NULL,
    detected TEXT NOT NULL,
    pinned BIGINT NOT NULL DEFAULT 0,
    applied_at BIGINT NOT NULL,
    generation BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_slots (
    scope TEXT NOT NULL,
    schedule TEXT NOT NULL,
    slot BIGINT NOT NULL,
    status TEXT NOT NULL,
    runs TEXT,
    at BIGINT NOT NULL,
    PRIMARY KEY (scope, schedule, slot)
);
