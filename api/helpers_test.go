package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/file"
)

const (
	adminToken  = "admin-secret-token"
	clientToken = "client-secret-token"
)

// fakeJobs is an in-memory JobService.
type fakeJobs struct {
	mu    sync.Mutex
	n     int
	jobs  map[string]*sluice.Job
	data  map[string][]byte
	specs []sluice.JobSpec
}

func newFakeJobs() *fakeJobs {
	return &fakeJobs{jobs: map[string]*sluice.Job{}, data: map[string][]byte{}}
}

func (f *fakeJobs) Submit(ctx context.Context, spec sluice.JobSpec) (*sluice.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	j := &sluice.Job{ID: fmt.Sprintf("job%03d", f.n), State: sluice.StateQueued, Spec: spec, CreatedAt: time.Now(), UpdatedAt: time.Now(),
		Key: fmt.Sprintf("%s/job%03d%s", spec.Database, f.n, spec.Ext())}
	f.jobs[j.ID] = j
	f.specs = append(f.specs, spec)
	cp := *j
	return &cp, nil
}

// lastID is the id of the job submitted last.
func (f *fakeJobs) lastID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("job%03d", f.n)
}

// complete marks a job completed with data as its object.
func (f *fakeJobs) complete(id string, data []byte, withHash bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	j.State = sluice.StateCompleted
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	j.FinishedAt = &now
	if withHash {
		j.Size = int64(len(data))
		j.SHA256 = fmt.Sprintf("%064x", len(data))
	}
	f.data[id] = data
}

func (f *fakeJobs) Get(ctx context.Context, id string) (*sluice.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return nil, fmt.Errorf("fake: job %s: %w", id, sluice.ErrNotFound)
	}
	cp := *j
	return &cp, nil
}

func (f *fakeJobs) List(ctx context.Context, q sluice.JobQuery) ([]*sluice.Job, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.jobs {
		ids = append(ids, id)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	var out []*sluice.Job
	next := ""
	for _, id := range ids {
		j := f.jobs[id]
		if q.After != "" && id >= q.After {
			continue
		}
		if (q.Database != "" && j.Spec.Database != q.Database) || (len(q.States) > 0 && !slices.Contains(q.States, j.State)) {
			continue
		}
		if len(out) == q.Limit {
			next = out[len(out)-1].ID
			break
		}
		cp := *j
		out = append(out, &cp)
	}
	return out, next, nil
}

func (f *fakeJobs) Cancel(ctx context.Context, id string) (*sluice.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return nil, fmt.Errorf("fake: job %s: %w", id, sluice.ErrNotFound)
	}
	if !j.State.Terminal() {
		j.State = sluice.StateCancelled
	}
	cp := *j
	return &cp, nil
}

func (f *fakeJobs) Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, objstore.ObjectInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return nil, objstore.ObjectInfo{}, fmt.Errorf("fake: job %s: %w", id, sluice.ErrNotFound)
	}
	if j.State != sluice.StateCompleted {
		return nil, objstore.ObjectInfo{}, fmt.Errorf("fake: job %s is %s: %w", id, j.State, sluice.ErrConflict)
	}
	d := f.data[id]
	info := objstore.ObjectInfo{Key: j.Key, Size: int64(len(d)), ETag: "etag-" + id}
	end := int64(len(d))
	if length >= 0 && offset+length < end {
		end = offset + length
	}
	return io.NopCloser(bytes.NewReader(d[offset:end])), info, nil
}

func (f *fakeJobs) DownloadURL(ctx context.Context, id string, expiry time.Duration) (string, error) {
	return "http://store.example/" + id + "?expiry=" + expiry.String(), nil
}

func (f *fakeJobs) CountByState(ctx context.Context) (map[sluice.State]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[sluice.State]int{}
	for _, j := range f.jobs {
		out[j.State]++
	}
	return out, nil
}

// testEnv is a running server with two databases, tokens, the fake job
// service and a real file store.
type testEnv struct {
	t     *testing.T
	srv   *Server
	url   string
	jobs  *fakeJobs
	store *file.Store
	dir   string
}

type envOption func(*Config, *Deps)

func newEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	dir := t.TempDir()
	logger := testsupport.Logger(t)
	store, err := file.New(filepath.Join(dir, "exports"), file.Options{SigningKey: []byte("k"), BaseURL: "http://placeholder"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Databases = []Database{{Name: "main", Path: filepath.Join(dir, "main.db")}, {Name: "other", Path: filepath.Join(dir, "other.db")}}
	cfg.AdminTokens = []string{adminToken}
	cfg.ClientTokens = []string{clientToken}
	cfg.MaxBodyBytes = 64 << 10
	cfg.MaxImportBytes = 4 << 20
	cfg.MaxResultBytes = 1 << 20
	jobs := newFakeJobs()
	deps := Deps{
		Jobs:  jobs,
		Files: &Files{Store: store, Verify: store.VerifyQuery, Version: file.Version},
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	s, err := New(cfg, deps, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &testEnv{t: t, srv: s, url: s.URL(), jobs: jobs, store: store, dir: dir}
}

// do sends a request with an optional bearer token.
func (e *testEnv) do(method, path, token string, body io.Reader, hdr ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		// JSON bodies need their type (see bodyTypes); tests of other
		// types pass their own.
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// call sends a request and returns the status and the whole body.
func (e *testEnv) call(method, path, token string, body string, hdr ...string) (int, []byte, http.Header) {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	resp := e.do(method, path, token, r, hdr...)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b, resp.Header
}

// query runs SQL through /query as admin and returns the decoded result.
func (e *testEnv) query(path, body string) any {
	e.t.Helper()
	code, b, _ := e.call("POST", path, adminToken, body, "Content-Type", "application/json")
	if code != http.StatusOK {
		e.t.Fatalf("POST %s %s: %d %s", path, body, code, b)
	}
	var out struct{ Result any }
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		e.t.Fatalf("decode %s: %v", b, err)
	}
	return out.Result
}

// errorCode decodes an error body and returns its code, failing the test
// if the body is not the JSON error shape.
func errorCode(t *testing.T, b []byte) (code, msg string) {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.Code == "" || eb.Error == "" {
		t.Fatalf("not a JSON error body: %q (%v)", b, err)
	}
	return eb.Code, eb.Error
}

// decodeResult decodes the "result" of a success body into v.
func decodeResult(b []byte, v any) error {
	var env struct{ Result json.RawMessage }
	if err := json.Unmarshal(b, &env); err != nil {
		return err
	}
	if len(env.Result) == 0 {
		return fmt.Errorf("no result in %s", b)
	}
	return json.Unmarshal(env.Result, v)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
