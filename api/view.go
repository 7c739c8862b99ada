package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice"
)

// wireState is a job state as StarbaseDB names it: queued, processing,
// completed, failed or cancelled. sluice's "running" is "processing" on
// the wire.
func wireState(s sluice.State) string {
	if s == sluice.StateRunning {
		return "processing"
	}
	return string(s)
}

// parseWireState parses a state filter: the wire names, and "running"
// as sluice's own name for "processing".
func parseWireState(v string) (sluice.State, error) {
	switch st := sluice.State(strings.ToLower(strings.TrimSpace(v))); st {
	case "":
		return "", nil
	case "processing", sluice.StateRunning:
		return sluice.StateRunning, nil
	case sluice.StateQueued, sluice.StateCompleted, sluice.StateFailed, sluice.StateCancelled:
		return st, nil
	}
	return "", badRequest("invalid_argument", fmt.Sprintf("unknown status %q (want queued, processing, completed, failed or cancelled)", v))
}

// jobView is a job as the status, submit, cancel and list routes show
// it: PR #251's DumpJobStatusView, then sluice's additions.
type jobView struct {
	JobID     string        `json:"jobId"`
	Status    string        `json:"status"`
	Format    sluice.Format `json:"format"`
	ObjectKey string        `json:"objectKey"`
	Error     string        `json:"error,omitempty"`
	Progress  progressView  `json:"progress"`
	StatusURL string        `json:"statusUrl"`
	// DownloadURL is sluice's download route; on the status route it is
	// set only once the job has completed.
	DownloadURL string `json:"downloadUrl,omitempty"`
	// DirectURL fetches the object without credentials (a presigned S3
	// URL or a signed /files/ URL) until DirectURLExpiresAt (epoch ms).
	DirectURL          string `json:"directUrl,omitempty"`
	DirectURLExpiresAt int64  `json:"directUrlExpiresAt,omitempty"`

	Database    string             `json:"database"`
	Spec        sluice.JobSpec     `json:"spec"`
	Consistency sluice.Consistency `json:"consistency"`
	Resumed     int                `json:"resumed"`
	Key         string             `json:"key"`
	Size        int64              `json:"size,omitempty"`
	SHA256      string             `json:"sha256,omitempty"`
	CreatedAt   time.Time          `json:"createdAt"`
	StartedAt   *time.Time         `json:"startedAt,omitempty"`
	UpdatedAt   time.Time          `json:"updatedAt"`
	FinishedAt  *time.Time         `json:"finishedAt,omitempty"`
	// Verification is set for jobs submitted with "verify": true.
	Verification *sluice.Verification `json:"verification,omitempty"`
}

// progressView is PR #251's DumpJobProgress (times in epoch
// milliseconds), then sluice's additions.
type progressView struct {
	Tables            []string `json:"tables"`
	CurrentTableIndex int      `json:"currentTableIndex"`
	CurrentTable      *string  `json:"currentTable"`
	RowOffset         int64    `json:"rowOffset"`
	RowsDumped        int64    `json:"rowsDumped"`
	BytesWritten      int64    `json:"bytesWritten"`
	PartsUploaded     int      `json:"partsUploaded"`
	StartedAt         int64    `json:"startedAt"`
	UpdatedAt         int64    `json:"updatedAt"`
	CompletedAt       *int64   `json:"completedAt,omitempty"`

	TablesDone     int   `json:"tablesDone"`
	TablesTotal    int   `json:"tablesTotal"`
	PartsTotal     int   `json:"partsTotal,omitempty"`
	EstimatedBytes int64 `json:"estimatedBytes,omitempty"`
}

// view builds a job's wire view; base is the job routes' URL prefix
// (public URL and /db/{name}).
func view(job *sluice.Job, base string) jobView {
	p := job.Progress
	tables := p.Tables
	if tables == nil {
		tables = []string{}
	}
	pv := progressView{
		Tables: tables, CurrentTableIndex: p.TablesDone, RowOffset: p.RowOffset,
		RowsDumped: p.Rows, BytesWritten: p.Bytes, PartsUploaded: p.PartsUploaded,
		StartedAt: job.CreatedAt.UnixMilli(), UpdatedAt: job.UpdatedAt.UnixMilli(),
		TablesDone: p.TablesDone, TablesTotal: p.TablesTotal, PartsTotal: p.PartsTotal, EstimatedBytes: p.EstimatedBytes,
	}
	if !job.State.Terminal() && p.TablesDone < len(tables) {
		pv.CurrentTable = &tables[p.TablesDone]
	}
	if job.FinishedAt != nil {
		ms := job.FinishedAt.UnixMilli()
		pv.CompletedAt = &ms
	}
	id := url.PathEscape(job.ID)
	return jobView{
		JobID: job.ID, Status: wireState(job.State), Format: job.Spec.Format, ObjectKey: job.Key,
		Error: job.Error, Progress: pv, StatusURL: base + "/export/dump/status/" + id,
		DownloadURL: base + "/export/dump/download/" + id,
		Database:    job.Spec.Database, Spec: job.Spec, Consistency: job.Consistency, Resumed: job.Resumed,
		Key: job.Key, Size: job.Size, SHA256: job.SHA256,
		CreatedAt: job.CreatedAt, StartedAt: job.StartedAt, UpdatedAt: job.UpdatedAt, FinishedAt: job.FinishedAt,
		Verification: job.Verification,
	}
}

// statusView is view for the status and list routes: downloadUrl only
// once the job has completed.
func statusView(job *sluice.Job, base string) jobView {
	v := view(job, base)
	if job.State != sluice.StateCompleted {
		v.DownloadURL = ""
	}
	return v
}

// attachment is a Content-Disposition value that every client reads the
// same way: the name quoted (as StarbaseDB sends it), with an ASCII
// fallback and RFC 6266's filename* for a name that is not plain ASCII.
func attachment(name string) string {
	ascii, plain := asciiName(name)
	v := `attachment; filename="` + ascii + `"`
	if !plain {
		v += "; filename*=UTF-8''" + url.PathEscape(name)
	}
	return v
}

// asciiName replaces what cannot sit in a quoted-string (non-ASCII,
// controls, quotes and backslashes) with '_'.
func asciiName(name string) (string, bool) {
	var b strings.Builder
	plain := utf8.ValidString(name)
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' {
			b.WriteByte('_')
			plain = false
			continue
		}
		b.WriteRune(r)
	}
	return b.String(), plain
}

// jobNotFound is StarbaseDB's answer for an unknown job.
func jobNotFound(id string) error {
	return apiErr(http.StatusNotFound, "not_found", fmt.Sprintf("Job '%s' not found.", id))
}

// dumpNotAvailable is StarbaseDB's answer for the download of a job that
// is unknown or has not completed.
func dumpNotAvailable(id string) error {
	return apiErr(http.StatusNotFound, "not_available", fmt.Sprintf("Dump for job '%s' is not available yet.", id))
}
