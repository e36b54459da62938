-- Version 19: PostgreSQL's trigger functions become PL/pgSQL (its migration 19). SQLite's
-- triggers have no functions of that kind; nothing changes here, and both backends stay at the
-- same version.
SELECT 1;
