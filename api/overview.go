package api

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/sluice-dev/sluice"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// ScheduleLister is optionally implemented by a JobService; GET
// /schedules lists nothing without it.
type ScheduleLister interface {
	Schedules(ctx context.Context) ([]sluice.ScheduleStatus, error)
}

// jobSummary is a job in one line: what the databases and schedules
// overviews say about an export.
type jobSummary struct {
	JobID      string     `json:"jobId"`
	Status     string     `json:"status"` // as on the wire: running is "processing"
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	Size       int64      `json:"size,omitempty"`
	Error      string     `json:"error,omitempty"`
}

func summarize(j *sluice.Job) *jobSummary {
	if j == nil {
		return nil
	}
	return &jobSummary{JobID: j.ID, Status: wireState(j.State), CreatedAt: j.CreatedAt, FinishedAt: j.FinishedAt, Size: j.Size, Error: j.Error}
}

// databaseInfo is one entry of GET /databases.
type databaseInfo struct {
	Name       string      `json:"name"`
	Default    bool        `json:"default"`
	SizeBytes  int64       `json:"sizeBytes"`
	WALBytes   int64       `json:"walBytes"`
	TableCount int         `json:"tableCount"`
	Tables     []string    `json:"tables"`
	LastExport *jobSummary `json:"lastExport"`
}

// handleDatabases lists the served databases: file and WAL sizes, the
// tables an export can select, and each one's newest export job.
func (s *Server) handleDatabases(w http.ResponseWriter, r *http.Request) error {
	names := s.dbNames()
	out := struct {
		Databases []databaseInfo `json:"databases"`
	}{Databases: make([]databaseInfo, 0, len(names))}
	for _, n := range names {
		info, err := s.describeDB(r.Context(), s.dbs[n])
		if err != nil {
			return err
		}
		out.Databases = append(out.Databases, info)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) describeDB(ctx context.Context, d *db) (databaseInfo, error) {
	info := databaseInfo{Name: d.name, Default: d.name == s.defDB, Tables: []string{}}
	var err error
	if info.SizeBytes, err = fileSize(d.path); err != nil {
		return info, err
	}
	if info.WALBytes, err = fileSize(d.path + "-wal"); err != nil {
		return info, err
	}
	conn, err := d.take(ctx, connUse{})
	if err != nil {
		return info, err
	}
	err = sqlitex.Execute(conn, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`,
		&sqlitex.ExecOptions{ResultFunc: func(stmt *sqlite.Stmt) error {
			info.Tables = append(info.Tables, stmt.ColumnText(0))
			return nil
		}})
	d.put(conn)
	if err != nil {
		return info, sqlErr(err)
	}
	info.TableCount = len(info.Tables)
	if s.deps.Jobs != nil {
		jobs, _, err := s.deps.Jobs.List(ctx, sluice.JobQuery{Database: d.name, Limit: 1})
		if err != nil {
			return info, err
		}
		if len(jobs) > 0 {
			info.LastExport = summarize(jobs[0])
		}
	}
	return info, nil
}

// fileSize is a file's size, 0 when it does not exist (a WAL is absent
// while no connection has the database open).
func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// scheduleInfo is one entry of GET /schedules.
type scheduleInfo struct {
	Name          string             `json:"name"`
	Cron          string             `json:"cron"`
	Database      string             `json:"database"`
	Format        sluice.Format      `json:"format"`
	Compression   sluice.Compression `json:"compression,omitempty"`
	KeepLast      int                `json:"keepLast"`
	MaxAgeSeconds int64              `json:"maxAgeSeconds"`
	NextRun       time.Time          `json:"nextRun"`
	LastRun       *time.Time         `json:"lastRun,omitempty"`
	LastJob       *jobSummary        `json:"lastJob"`
}

// handleSchedules lists the configured schedules with their next and
// last runs and retention.
func (s *Server) handleSchedules(w http.ResponseWriter, r *http.Request) error {
	out := struct {
		Schedules []scheduleInfo `json:"schedules"`
	}{Schedules: []scheduleInfo{}}
	if sl, ok := s.deps.Jobs.(ScheduleLister); ok {
		list, err := sl.Schedules(r.Context())
		if err != nil {
			return err
		}
		for _, sc := range list {
			out.Schedules = append(out.Schedules, scheduleInfo{
				Name: sc.Name, Cron: sc.Cron, Database: cmp.Or(sc.Spec.Database, s.defDB), Format: sc.Spec.Format,
				Compression: sc.Spec.Compression, KeepLast: sc.KeepLast, MaxAgeSeconds: int64(sc.MaxAge / time.Second),
				NextRun: sc.NextRun, LastRun: sc.LastRun, LastJob: summarize(sc.LastJob),
			})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// dbNames lists the served databases, the default first, then by name.
func (s *Server) dbNames() []string {
	names := []string{s.defDB}
	for n := range s.dbs {
		if n != s.defDB {
			names = append(names, n)
		}
	}
	sort.Strings(names[1:])
	return names
}
