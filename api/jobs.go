package api

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
)

// exportParams are the options of POST /export/dump and the legacy
// GET /export/dump, from the query string and (POST) a JSON body; the
// body wins where both give a value.
var exportParams = map[string]bool{
	"format": true, "table": true, "tables": true, "exclude": true, "chunkSize": true,
	"callbackUrl": true, "compress": true, "consistency": true, "key": true,
	"preserveRowids": true, "verify": true,
}

// specFromRequest builds and validates a job spec for database d. body
// holds the decoded JSON body's fields, or is nil.
func (s *Server) specFromRequest(r *http.Request, d *db, body map[string]json.RawMessage) (sluice.JobSpec, error) {
	vals := map[string]string{}
	lists := map[string][]string{}
	for k, vs := range r.URL.Query() {
		if !exportParams[k] {
			return sluice.JobSpec{}, badRequest("invalid_argument", fmt.Sprintf("unknown parameter %q", k))
		}
		if k == "table" || k == "tables" || k == "exclude" {
			for _, v := range vs {
				lists[k] = append(lists[k], splitList(v)...)
			}
			continue
		}
		vals[k] = vs[len(vs)-1]
	}
	for k, raw := range body {
		if !exportParams[k] {
			return sluice.JobSpec{}, badRequest("invalid_argument", fmt.Sprintf("unknown field %q", k))
		}
		var list []string
		var str string
		var num json.Number
		var b bool
		switch {
		case json.Unmarshal(raw, &str) == nil:
			if k == "table" || k == "tables" || k == "exclude" {
				lists[k] = splitList(str)
			} else {
				vals[k] = str
			}
		case (k == "table" || k == "tables" || k == "exclude") && json.Unmarshal(raw, &list) == nil:
			lists[k] = list
		case k == "chunkSize" && json.Unmarshal(raw, &num) == nil:
			vals[k] = num.String()
		case (k == "compress" || k == "preserveRowids" || k == "verify") && json.Unmarshal(raw, &b) == nil:
			vals[k] = strconv.FormatBool(b)
		case string(raw) == "null":
		default:
			return sluice.JobSpec{}, badRequest("invalid_argument", fmt.Sprintf("field %q has the wrong type", k))
		}
	}

	spec := sluice.JobSpec{Database: d.name, CallbackURL: vals["callbackUrl"], Key: vals["key"]}
	var err error
	if spec.Format, err = sluice.ParseFormat(vals["format"]); err != nil {
		return spec, badRequest("unknown_format", err.Error())
	}
	switch c := strings.ToLower(vals["compress"]); c {
	case "true", "1", "yes":
		spec.Compression = sluice.CompressGzip
	case "false", "0", "no":
		spec.Compression = sluice.CompressNone
	default:
		if spec.Compression, err = sluice.ParseCompression(c); err != nil {
			return spec, badRequest("unknown_compression", err.Error())
		}
	}
	switch v := strings.ToLower(vals["preserveRowids"]); v {
	case "", "false", "0", "no":
	case "true", "1", "yes":
		spec.PreserveRowids = true
	default:
		return spec, badRequest("invalid_argument", fmt.Sprintf("preserveRowids must be true or false, not %q", vals["preserveRowids"]))
	}
	switch v := strings.ToLower(vals["verify"]); v {
	case "", "false", "0", "no":
	case "true", "1", "yes":
		spec.Verify = true
	default:
		return spec, badRequest("invalid_argument", fmt.Sprintf("verify must be true or false, not %q", vals["verify"]))
	}
	if v := vals["chunkSize"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > dump.MaxChunkSize {
			return spec, badRequest("chunk_size_out_of_range", fmt.Sprintf("chunkSize must be an integer from 1 to %d", dump.MaxChunkSize))
		}
		spec.ChunkSize = n
	}
	switch c := sluice.Consistency(strings.ToLower(vals["consistency"])); c {
	case "":
	case sluice.ConsistencySnapshot, sluice.ConsistencyStrict:
		spec.Consistency = c
	default:
		return spec, badRequest("invalid_argument", fmt.Sprintf("unknown consistency %q (want snapshot or strict)", vals["consistency"]))
	}
	if cb := spec.CallbackURL; cb != "" {
		u, err := url.Parse(cb)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return spec, badRequest("invalid_argument", fmt.Sprintf("callbackUrl %q is not an http(s) URL", cb))
		}
	}
	spec.Tables = append(lists["table"], lists["tables"]...)
	spec.Exclude = lists["exclude"]
	if err := s.checkTables(r, d, append(append([]string(nil), spec.Tables...), spec.Exclude...)); err != nil {
		return spec, err
	}
	return spec, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkTables answers 404 for a table that d does not have.
func (s *Server) checkTables(r *http.Request, d *db, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	conn, err := d.take(r.Context())
	if err != nil {
		return err
	}
	defer d.put(conn)
	for _, t := range tables {
		if _, err := tableKind(conn, t); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) jobs() (JobService, error) {
	if s.deps.Jobs == nil {
		return nil, apiErr(http.StatusServiceUnavailable, "unavailable", "the jobs service is not configured")
	}
	return s.deps.Jobs, nil
}

// submitResponse is POST /export/dump's answer.
type submitResponse struct {
	JobID     string       `json:"jobId"`
	Status    sluice.State `json:"status"`
	StatusURL string       `json:"statusUrl"`
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) error {
	d, err := s.database(r)
	if err != nil {
		return err
	}
	js, err := s.jobs()
	if err != nil {
		return err
	}
	var body map[string]json.RawMessage
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return jsonError(err)
	}
	if trimmed := strings.TrimSpace(string(data)); len(trimmed) > 0 {
		if strings.HasPrefix(trimmed, "{") {
			// JSON whatever the Content-Type: `curl -d '{...}'` labels
			// its body as a form.
			ct = "application/json"
		}
		switch ct {
		case "application/json", "":
			if err := json.Unmarshal(data, &body); err != nil {
				return jsonError(err)
			}
		case "application/x-www-form-urlencoded":
			form, err := url.ParseQuery(string(data))
			if err != nil {
				return badRequest("bad_form", err.Error())
			}
			body = map[string]json.RawMessage{}
			for k, v := range form {
				b, _ := json.Marshal(v[len(v)-1])
				body[k] = b
			}
		default:
			return apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type", "send JSON or a form, or use query parameters")
		}
	}
	spec, err := s.specFromRequest(r, d, body)
	if err != nil {
		return err
	}
	job, err := js.Submit(r.Context(), spec)
	if err != nil {
		return err
	}
	if job == nil {
		return fmt.Errorf("submit: jobs service returned no job")
	}
	statusURL := s.baseURL(r) + dbPrefix(r) + "/export/dump/status/" + url.PathEscape(job.ID)
	w.Header().Set("Location", statusURL)
	writeJSON(w, http.StatusAccepted, submitResponse{JobID: job.ID, Status: job.State, StatusURL: statusURL})
	return nil
}

// job fetches a job and checks that it belongs to the request's database.
func (s *Server) job(r *http.Request) (*sluice.Job, JobService, error) {
	d, err := s.database(r)
	if err != nil {
		return nil, nil, err
	}
	js, err := s.jobs()
	if err != nil {
		return nil, nil, err
	}
	id := r.PathValue("jobId")
	job, err := js.Get(r.Context(), id)
	if err != nil {
		return nil, nil, err
	}
	if job == nil || !s.jobInDB(job, d) {
		return nil, nil, apiErr(http.StatusNotFound, "not_found", fmt.Sprintf("job %q not found in database %q", id, d.name))
	}
	return job, js, nil
}

// jobInDB reports whether job exports database d.
func (s *Server) jobInDB(job *sluice.Job, d *db) bool {
	return job.Spec.Database == d.name || (job.Spec.Database == "" && d.name == s.defDB)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) error {
	wait, err := parseWait(r)
	if err != nil {
		return err
	}
	job, js, err := s.job(r)
	if err != nil {
		return err
	}
	if job, err = waitForEnd(r.Context(), js, job, wait); err != nil {
		return err
	}
	if job.State == sluice.StateCompleted {
		u, err := js.DownloadURL(r.Context(), job.ID, s.cfg.DownloadURLExpiry)
		if err != nil {
			return err
		}
		cp := *job // the service's value stays untouched
		cp.DownloadURL = u
		job = &cp
	}
	writeJSON(w, http.StatusOK, job)
	return nil
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) error {
	job, js, err := s.job(r)
	if err != nil {
		return err
	}
	cancelled, err := js.Cancel(r.Context(), job.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cancelled)
	return nil
}

// listResponse is GET /export/dump/jobs's answer.
type listResponse struct {
	Jobs       []*sluice.Job `json:"jobs"`
	NextCursor string        `json:"nextCursor,omitempty"`
}

func (s *Server) handleListJobs(w http.ResponseWriter, r *http.Request) error {
	d, err := s.database(r)
	if err != nil {
		return err
	}
	js, err := s.jobs()
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", DefaultPageSize, 1, MaxPageSize)
	if err != nil {
		return err
	}
	st := sluice.State(strings.ToLower(r.URL.Query().Get("state")))
	switch st {
	case "", sluice.StateQueued, sluice.StateRunning, sluice.StateCompleted, sluice.StateFailed, sluice.StateCancelled:
	default:
		return badRequest("invalid_argument", fmt.Sprintf("unknown state %q", st))
	}
	jobs, next, err := js.List(r.Context(), JobQuery{Database: d.name, State: st, Limit: limit, Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		return err
	}
	mine := make([]*sluice.Job, 0, len(jobs))
	for _, j := range jobs {
		if j != nil && s.jobInDB(j, d) {
			mine = append(mine, j)
		}
	}
	writeJSON(w, http.StatusOK, listResponse{Jobs: mine, NextCursor: next})
	return nil
}
