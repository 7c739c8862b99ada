package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
)

// exportParams are the options of POST /export/dump and the legacy
// GET /export/dump. listParams among them name tables.
var (
	exportParams = map[string]bool{
		"format": true, "table": true, "tables": true, "exclude": true, "chunkSize": true,
		"callbackUrl": true, "compress": true, "consistency": true, "key": true,
		"preserveRowids": true, "verify": true,
	}
	listParams = map[string]bool{"table": true, "tables": true, "exclude": true}
)

// specParams collects export options from a query string, a form or a
// JSON body before they become a spec. Later sources win per option.
type specParams struct {
	vals  map[string]string
	lists map[string][]string
}

func newSpecParams() *specParams {
	return &specParams{vals: map[string]string{}, lists: map[string][]string{}}
}

// addValues adds a query string's or form's options. `table` is one
// name; `tables` and `exclude` are comma-separated lists. Unknown names
// are refused when strict, else ignored (StarbaseDB clients send
// `source=` to the legacy routes).
func (p *specParams) addValues(vs url.Values, strict bool) error {
	for k, v := range vs {
		switch {
		case !exportParams[k] && k == "source":
		case !exportParams[k] && strict:
			return badRequest("invalid_argument", fmt.Sprintf("unknown parameter %q", k))
		case !exportParams[k]:
		case k == "table":
			p.lists[k] = append([]string(nil), v...)
		case listParams[k]:
			p.lists[k] = nil
			for _, s := range v {
				p.lists[k] = append(p.lists[k], splitList(s)...)
			}
		default:
			p.vals[k] = v[len(v)-1]
		}
	}
	return nil
}

// addJSON adds a JSON body's options. A list option may be an array of
// names (which may contain commas) or a string as in a query string.
func (p *specParams) addJSON(body map[string]json.RawMessage) error {
	for k, raw := range body {
		if !exportParams[k] {
			return badRequest("invalid_argument", fmt.Sprintf("unknown field %q", k))
		}
		var list []string
		var str string
		var num json.Number
		var b bool
		switch {
		case string(raw) == "null":
		case json.Unmarshal(raw, &str) == nil:
			if err := p.addValues(url.Values{k: {str}}, true); err != nil {
				return err
			}
		case listParams[k] && json.Unmarshal(raw, &list) == nil:
			p.lists[k] = list
		case k == "chunkSize" && json.Unmarshal(raw, &num) == nil:
			p.vals[k] = num.String()
		case (k == "compress" || k == "preserveRowids" || k == "verify") && json.Unmarshal(raw, &b) == nil:
			p.vals[k] = strconv.FormatBool(b)
		default:
			return badRequest("invalid_argument", fmt.Sprintf("field %q has the wrong type", k))
		}
	}
	return nil
}

// spec turns the options into a spec for database db and normalises it
// (sluice.JobSpec.Normalize holds every rule).
func (p *specParams) spec(db string) (sluice.JobSpec, error) {
	spec := sluice.JobSpec{
		Database: db, Format: sluice.Format(p.vals["format"]), Compression: sluice.Compression(p.vals["compress"]),
		Consistency: sluice.Consistency(p.vals["consistency"]), CallbackURL: p.vals["callbackUrl"], Key: p.vals["key"],
		Tables: append(p.lists["table"], p.lists["tables"]...), Exclude: p.lists["exclude"],
	}
	if v := strings.TrimSpace(p.vals["chunkSize"]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return spec, badRequest("invalid_argument", fmt.Sprintf("chunkSize must be an integer from 1 to %d", sluice.MaxChunkSize))
		}
		spec.ChunkSize = n
	}
	var err error
	if spec.PreserveRowids, err = p.flag("preserveRowids"); err != nil {
		return spec, err
	}
	if spec.Verify, err = p.flag("verify"); err != nil {
		return spec, err
	}
	return spec.Normalize()
}

// flag reads a boolean option; absent is false.
func (p *specParams) flag(name string) (bool, error) {
	switch v := strings.ToLower(strings.TrimSpace(p.vals[name])); v {
	case "", "false", "0", "no":
		return false, nil
	case "true", "1", "yes":
		return true, nil
	default:
		return false, badRequest("invalid_argument", fmt.Sprintf("%s must be true or false, not %q", name, v))
	}
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

// readSubmitParams reads POST /export/dump's options: the query string,
// then a JSON or form body, if any (the body wins).
func (s *Server) readSubmitParams(w http.ResponseWriter, r *http.Request) (*specParams, error) {
	p := newSpecParams()
	if err := p.addValues(r.URL.Query(), true); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return nil, jsonError(err)
	}
	if strings.TrimSpace(string(data)) == "" {
		return p, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var body map[string]json.RawMessage
		if err := json.Unmarshal(data, &body); err != nil {
			return nil, jsonError(err)
		}
		return p, p.addJSON(body)
	case "application/x-www-form-urlencoded":
		if strings.HasPrefix(strings.TrimSpace(string(data)), "{") {
			return nil, needJSONType()
		}
		form, err := url.ParseQuery(string(data))
		if err != nil {
			return nil, badRequest("bad_form", err.Error())
		}
		return p, p.addValues(form, true)
	}
	return nil, apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"send Content-Type: application/json or application/x-www-form-urlencoded, or use query parameters")
}

func (s *Server) jobs() (JobService, error) {
	if s.deps.Jobs == nil {
		return nil, apiErr(http.StatusServiceUnavailable, "unavailable", "the jobs service is not configured")
	}
	return s.deps.Jobs, nil
}

// jobsBase is the URL prefix of the request's database's job routes.
func (s *Server) jobsBase(r *http.Request) string {
	return s.baseURL(r) + dbPrefix(r)
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
	p, err := s.readSubmitParams(w, r)
	if err != nil {
		return err
	}
	spec, err := p.spec(d.name)
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
	v := view(job, s.jobsBase(r))
	w.Header().Set("Location", v.StatusURL)
	writeJSON(w, http.StatusAccepted, v)
	return nil
}

// job fetches the path's job, which must belong to the request's
// database; notFound makes the answer for a job that does not.
func (s *Server) job(r *http.Request, notFound func(id string) error) (*sluice.Job, JobService, error) {
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
	if errors.Is(err, sluice.ErrNotFound) || (err == nil && (job == nil || job.Spec.Database != d.name)) {
		return nil, nil, notFound(id)
	}
	if err != nil {
		return nil, nil, err
	}
	return job, js, nil
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) error {
	wait, err := parseWait(r)
	if err != nil {
		return err
	}
	job, js, err := s.job(r, jobNotFound)
	if err != nil {
		return err
	}
	if job, err = waitForEnd(r.Context(), js, job, wait); err != nil {
		return err
	}
	v := statusView(job, s.jobsBase(r))
	if job.State == sluice.StateCompleted {
		expires := time.Now().Add(s.cfg.DownloadURLExpiry)
		u, err := js.DownloadURL(r.Context(), job.ID, s.cfg.DownloadURLExpiry)
		if err != nil {
			return err
		}
		v.DirectURL, v.DirectURLExpiresAt = u, expires.UnixMilli()
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// handleCancel cancels a job in flight; a job that has already ended is
// answered unchanged, so DELETE is idempotent.
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) error {
	job, js, err := s.job(r, jobNotFound)
	if err != nil {
		return err
	}
	if !job.State.Terminal() {
		cancelled, err := js.Cancel(r.Context(), job.ID)
		switch {
		case errors.Is(err, sluice.ErrConflict):
			// It ended between Get and Cancel: answer what it became.
			if job, err = js.Get(r.Context(), job.ID); err != nil {
				return err
			}
		case err != nil:
			return err
		case cancelled != nil:
			job = cancelled
		}
	}
	writeJSON(w, http.StatusOK, statusView(job, s.jobsBase(r)))
	return nil
}

// listResponse is GET /export/dump/jobs's result.
type listResponse struct {
	Jobs       []jobView `json:"jobs"`
	NextCursor string    `json:"nextCursor,omitempty"`
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
	limit, err := queryInt(r, "limit", sluice.DefaultPageSize, 1, sluice.MaxPageSize)
	if err != nil {
		return err
	}
	q := sluice.JobQuery{Database: d.name, Limit: limit, After: r.URL.Query().Get("cursor")}
	for _, name := range []string{"status", "state"} {
		st, err := parseWireState(r.URL.Query().Get(name))
		if err != nil {
			return err
		}
		if st != "" {
			q.States = append(q.States, st)
		}
	}
	jobs, next, err := js.List(r.Context(), q)
	if err != nil {
		return err
	}
	base := s.jobsBase(r)
	out := listResponse{Jobs: make([]jobView, 0, len(jobs)), NextCursor: next}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, statusView(j, base))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
