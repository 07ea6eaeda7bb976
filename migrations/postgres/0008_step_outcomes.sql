-- How each step of a job ended (exit code, signal, timeout, not run and why).
ALTER TABLE jobs ADD COLUMN steps TEXT;
