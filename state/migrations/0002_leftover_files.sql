-- Leftover bytes move out of the database into files beside it (see
-- state/leftover.go): a megabyte BLOB written per checkpoint went through
-- SQLite's process-wide allocator and page-cache locks and stalled the
-- server's queries. Rows written before keep their BLOB, still read.
ALTER TABLE checkpoints ADD COLUMN leftover_file TEXT NOT NULL DEFAULT '';
ALTER TABLE checkpoints ADD COLUMN leftover_sha256 TEXT NOT NULL DEFAULT '';
