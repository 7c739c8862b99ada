-- A job's database is a column of its own, so that listing one
-- database's jobs is an indexed query rather than a scan of every job's
-- spec. Jobs from before keep '' when their spec named no database;
-- Tx.SetDefaultDatabase gives them the default one.
ALTER TABLE jobs ADD COLUMN database TEXT NOT NULL DEFAULT '';
UPDATE jobs SET database = coalesce(json_extract(spec, '$.database'), '');
CREATE INDEX jobs_database ON jobs (database, id);
