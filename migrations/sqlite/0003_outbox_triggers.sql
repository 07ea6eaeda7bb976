-- Every state a job or run is given is in the outbox, written by the statement that gives
-- it: no code path can forget it, and a claim is a single statement.
CREATE TRIGGER outbox_job_inserted AFTER INSERT ON jobs BEGIN INSERT INTO outbox (run_id, job_key, state, created_at) VALUES (NEW.run_id, NEW.job_key, NEW.state, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;
CREATE TRIGGER outbox_job_changed AFTER UPDATE OF state ON jobs WHEN NEW.state IS NOT OLD.state BEGIN INSERT INTO outbox (run_id, job_key, state, created_at) VALUES (NEW.run_id, NEW.job_key, NEW.state, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;
CREATE TRIGGER outbox_run_inserted AFTER INSERT ON runs BEGIN INSERT INTO outbox (run_id, job_key, state, created_at) VALUES (NEW.id, NULL, NEW.status, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;
CREATE TRIGGER outbox_run_changed AFTER UPDATE OF status ON runs WHEN NEW.status IS NOT OLD.status BEGIN INSERT INTO outbox (run_id, job_key, state, created_at) VALUES (NEW.id, NULL, NEW.status, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;
