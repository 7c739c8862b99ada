-- sluice state schema, version 1. Times are Unix milliseconds (UTC).

CREATE TABLE jobs (
  id          TEXT PRIMARY KEY,
  spec        TEXT NOT NULL,              -- sluice.JobSpec as JSON
  state       TEXT NOT NULL,              -- queued, running, completed, failed, cancelled
  progress    TEXT NOT NULL DEFAULT '{}', -- sluice.Progress as JSON
  error       TEXT NOT NULL DEFAULT '',
  key         TEXT NOT NULL,              -- destination object key
  size        INTEGER NOT NULL DEFAULT 0,
  sha256      TEXT NOT NULL DEFAULT '',
  consistency TEXT NOT NULL DEFAULT 'snapshot',
  resumed     INTEGER NOT NULL DEFAULT 0,
  schedule_id TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL,
  started_at  INTEGER,
  updated_at  INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_schedule ON jobs (schedule_id, state, finished_at);

-- One row per job that has started writing: everything a resumed tick
-- needs, written in one transaction so it is never half-updated. The
-- upload state carries the SHA-256 state of the bytes in its parts.
CREATE TABLE checkpoints (
  job_id     TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  cursor     TEXT NOT NULL DEFAULT '{}', -- dump.Cursor as JSON
  upload     TEXT NOT NULL DEFAULT '{}', -- objstore.State (multipart upload and hash) as JSON
  leftover   BLOB,                       -- output bytes not yet in an uploaded part
  snapshot   TEXT NOT NULL DEFAULT '',   -- strict consistency: path of the snapshot copy
  updated_at INTEGER NOT NULL
);

-- Durable due work. A task is claimable when due_at <= now and its lease
-- has expired; claiming sets lease_owner and lease_until in one UPDATE.
CREATE TABLE tasks (
  id          INTEGER PRIMARY KEY,
  kind        TEXT NOT NULL,
  key         TEXT NOT NULL UNIQUE, -- dedupe key: at most one task per key
  due_at      INTEGER NOT NULL,
  payload     BLOB,
  attempts    INTEGER NOT NULL DEFAULT 0,
  lease_until INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT NOT NULL DEFAULT '',
  rev         INTEGER NOT NULL DEFAULT 0 -- bumped on every re-enqueue, so finishing a claimed task keeps a newer request
);
CREATE INDEX tasks_due ON tasks (due_at, id);

CREATE TABLE callback_attempts (
  job_id     TEXT NOT NULL,
  attempt    INTEGER NOT NULL,
  at         INTEGER NOT NULL,
  url        TEXT NOT NULL,
  status     INTEGER NOT NULL DEFAULT 0, -- HTTP status, 0 when no response
  error      TEXT NOT NULL DEFAULT '',
  delivered  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, attempt)
);

CREATE TABLE schedules (
  name     TEXT PRIMARY KEY,
  last_run INTEGER NOT NULL -- the slot time of the last fired run
);
