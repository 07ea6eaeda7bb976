-- Jobs a person starts: `gate` is `manual` (GitLab `when: manual` that may fail),
-- `manual-blocking` (`allow_failure: false`) or `approval:<environment>` (a protected
-- environment); `inputs` holds the job inputs it declares and `played` the values a play
-- gave (JSON). Runs keep the commit's title, why the
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
