-- Every state a job or run is given is in the outbox, written by the statement that gives
-- it: no code path can forget it, and a claim is a single statement.
CREATE FUNCTION tess_outbox_job() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN INSERT INTO outbox (run_id, job_key, state, created_at) VALUES (NEW.run_id, NEW.job_key, NEW.state, (extract(epoch FROM clock_timestamp()) * 1000)::bigint); END IF; RETURN NULL; END $$;
CREATE TRIGGER outbox_job AFTER INSERT OR UPDATE OF state ON jobs FOR EACH ROW EXECUTE FUNCTION tess_outbox_job();
CREATE FUNCTION tess_outbox_run() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN INSERT INTO outbox (run_id, job_key, state, created_at) VALUES (NEW.id, NULL, NEW.status, (extract(epoch FROM clock_timestamp()) * 1000)::bigint); END IF; RETURN NULL; END $$;
CREATE TRIGGER outbox_run AFTER INSERT OR UPDATE OF status ON runs FOR EACH ROW EXECUTE FUNCTION tess_outbox_run();
