-- PostgreSQL's claim. Its settings keep the plan on the queue index: right after a big run
-- is queued the statistics still say the queue is tiny, and a plan that sorts the whole
-- queue for every claim would be chosen.
-- Nothing for SQLite (its claim is a statement of the store).
SELECT 1;
