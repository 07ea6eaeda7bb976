-- PostgreSQL's claim keeps its plan (see the PostgreSQL migration).
-- Nothing for SQLite (its claim is a statement of the store).
SELECT 1;
