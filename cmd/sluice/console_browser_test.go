package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/sluice-dev/sluice/internal/headless"
)

// One headless Chromium serves every browser test of this binary; each
// test opens its own tab. TestMain stops it.
var (
	browserOnce sync.Once
	browserCtx  context.Context
	browserStop = func() {}
	browserErr  error
	browserDir  string
)

func stopBrowser() {
	browserStop()
	if browserDir != "" {
		os.RemoveAll(browserDir)
	}
}

// pageProblems collects what makes a console test fail whatever it
// checks: console errors, uncaught exceptions, browser log errors (CSP
// violations among them) and dialogs. HTTP error statuses are logged by
// Chrome as network errors; the tests check statuses themselves.
type pageProblems struct {
	mu   sync.Mutex
	list []string
}

func (p *pageProblems) add(s string) {
	p.mu.Lock()
	p.list = append(p.list, s)
	p.mu.Unlock()
}

// newTab opens a tab in the shared browser, skipping the test when
// Chromium is not installed (scripts/test installs it).
func newTab(t *testing.T) context.Context {
	t.Helper()
	if !headless.Available() {
		t.Skipf("%s is missing: install Debian's chromium package (scripts/test does) to run the console's browser tests", headless.Path)
	}
	browserOnce.Do(func() {
		browserDir, browserErr = os.MkdirTemp("", "sluice-chromium-")
		if browserErr == nil {
			browserCtx, browserStop, browserErr = headless.Start(context.Background(), browserDir, 1280, 900)
		}
	})
	if browserErr != nil {
		t.Fatal(browserErr)
	}
	probs := &pageProblems{}
	var ctx context.Context
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				probs.add(fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(parts, " ")))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			probs.add("exception: " + msg)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				probs.add(fmt.Sprintf("log %s: %s", ev.Entry.Source, ev.Entry.Text))
			}
		case *page.EventJavascriptDialogOpening:
			probs.add("dialog: " + ev.Message)
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}))
	t.Cleanup(func() {
		// CSP violations also reach the page as events; the script that
		// counts them is injected by the browser, not the page, so the
		// policy does not apply to it.
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__cspViolations ? window.__cspViolations.length : 0`))
		if err == nil && n > 0 {
			probs.add(fmt.Sprintf("%d CSP violations", n))
		}
		cancel()
		probs.mu.Lock()
		defer probs.mu.Unlock()
		for _, p := range probs.list {
			t.Errorf("page problem: %s", p)
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__cspViolations = []; document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(e.violatedDirective));`,
	}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// do runs browser actions with a deadline, failing the test on error.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// jobWait bounds a wait on a job's progress as the console shows it. A
// job runs in the export worker, a process of its own that the parallel
// packages of go test ./... can keep off the CPU for a while; the bound
// only matters when something is wrong.
const jobWait = 90 * time.Second

// waitFor polls a JavaScript expression in the page until it is truthy.
func waitFor(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expr+")", chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return s
}

// startConsoleServer runs `sluice serve` with two databases, "main"
// (the default) and "big", a file store, and tokens when token != "".
func startConsoleServer(t *testing.T, token string) *e2eServer {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"dataDir":         filepath.Join(dir, "data"),
		"databases":       map[string]string{"main": filepath.Join(dir, "main.db"), "big": filepath.Join(dir, "big.db")},
		"defaultDatabase": "main",
		// The console is what is tested here, against deadlines, beside
		// a busy Chromium: the export worker runs at the server's
		// priority, not only on CPU time nothing else wants.
		"limits": map[string]any{"exportNice": 0},
	}
	if token != "" {
		cfg["tokens"] = map[string]any{"admin": []string{token}}
	}
	// An empty file is an empty database; serve wants the file to exist.
	if err := os.WriteFile(filepath.Join(dir, "big.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "sluice.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return startE2EServer(t, dir, path, token)
}

// apiResult decodes a response body, unwrapping {"result": …} when the
// server sends the envelope.
func apiResult(t *testing.T, body []byte, v any) {
	t.Helper()
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if r, ok := env["result"]; ok {
		body = r
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

const xssTable = `<img src=x onerror=alert(1)>`

// TestConsoleBrowser drives the console in Chromium against the real
// server in no-token mode: a browser at / lands on /ui/; a hostile table
// name shows as text; an export submitted through the form reaches
// completed with a full progress bar and downloads through the row's
// link with the status's SHA-256; a bad callback URL shows the server's
// message; a running job is cancelled from its row.
func TestConsoleBrowser(t *testing.T) {
	ctx := newTab(t)
	s := startConsoleServer(t, "")
	s.query(map[string]any{"transaction": []map[string]any{
		{"sql": `CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)`},
		{"sql": `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000) INSERT INTO notes(body) SELECT 'note ' || i FROM n`},
		{"sql": `CREATE TABLE "` + xssTable + `"(x)`},
		{"sql": `INSERT INTO "` + xssTable + `" VALUES ('<b>bold</b>')`},
	}})

	do(t, ctx, "open /", chromedp.Navigate(s.base+"/"))
	waitFor(t, ctx, "the console", `location.pathname === '/ui/' && !document.getElementById('console').hidden && document.querySelectorAll('#db-table tbody tr').length === 2`, 20*time.Second)

	t.Run("hostile table name is text", func(t *testing.T) {
		waitFor(t, ctx, "the table list", `document.querySelectorAll('#f-table-list label').length === 2`, 10*time.Second)
		labels := evalString(t, ctx, `Array.from(document.querySelectorAll('#f-table-list label'), l => l.textContent).join('\n')`)
		if !strings.Contains(labels, xssTable) {
			t.Fatalf("table labels %q lack %q", labels, xssTable)
		}
		if n := evalString(t, ctx, `String(document.querySelectorAll('img').length)`); n != "0" {
			t.Fatalf("%s images in the page", n)
		}
	})

	t.Run("labels and phone width", func(t *testing.T) {
		unlabelled := evalString(t, ctx, `Array.from(document.querySelectorAll('input, select, button, a[href]'))
			.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
			.map(e => e.outerHTML).join(' ')`)
		if unlabelled != "" {
			t.Errorf("controls without a label: %s", unlabelled)
		}
		if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: 375, Height: 800, DeviceScaleFactor: 1, Mobile: true,
		}); err != nil {
			t.Fatal(err)
		}
		defer chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
		waitFor(t, ctx, "the phone layout", `innerWidth === 375`, 5*time.Second)
		if w := evalString(t, ctx, `String(document.documentElement.scrollWidth)`); w != "375" {
			t.Errorf("at 375 px wide the page is %s px wide", w)
		}
	})

	var jobID string
	t.Run("submit, complete, download", func(t *testing.T) {
		do(t, ctx, "submit the form",
			chromedp.SetValue(chromedp.ID("f-database"), "main"),
			chromedp.SetValue(chromedp.ID("f-format"), "sql"),
			chromedp.Click(chromedp.ID("f-verify")),
			chromedp.Click(chromedp.ID("f-submit")))
		waitFor(t, ctx, "the queued message", `/^Export \S+ queued\.$/.test(document.getElementById('form-ok').textContent)`, 10*time.Second)
		do(t, ctx, "clear the verify box", chromedp.Click(chromedp.ID("f-verify")))
		jobID = strings.Fields(evalString(t, ctx, `document.getElementById('form-ok').textContent`))[1]
		row := fmt.Sprintf(`document.querySelector('tr[data-job=%q]')`, jobID)
		waitFor(t, ctx, "the completed row", row+` && `+row+`.querySelector('.status').textContent === 'completed' && `+row+`.querySelector('progress').value === 100`, jobWait)
		waitFor(t, ctx, "the verified badge", row+`.querySelector('td[data-label=Verified]').textContent.startsWith('passed')`, jobWait)

		downloadFromRow(t, ctx, s, jobID)
	})

	t.Run("bad callback URL", func(t *testing.T) {
		do(t, ctx, "submit a bad callback",
			chromedp.SetValue(chromedp.ID("f-callback"), "ftp://example.com/hook"),
			chromedp.Click(chromedp.ID("f-submit")))
		waitFor(t, ctx, "the error message", `document.getElementById('form-error').textContent.includes('callbackUrl')`, 10*time.Second)
		// The message is the server's own.
		b, _ := json.Marshal(map[string]any{"callbackUrl": "ftp://example.com/hook"})
		resp, body := s.do("POST", "/export/dump", b, nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("API answered %d %s", resp.StatusCode, body)
		}
		shown := evalString(t, ctx, `document.getElementById('form-error').textContent`)
		if !strings.Contains(string(body), strings.ReplaceAll(shown, `"`, `\"`)) {
			t.Errorf("form shows %q, server said %s", shown, body)
		}
		evalString(t, ctx, `document.getElementById('f-callback').value = ''`)
	})

	t.Run("cancel a running job", func(t *testing.T) {
		s.do("POST", "/db/big/query", []byte(`{"sql":"CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)"}`), nil)
		// A million one-row pages: long enough, even for split reading
		// on an idle machine, for the console to show the job running.
		resp, body := s.do("POST", "/db/big/query", []byte(`{"sql":"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 1000000) INSERT INTO big(v) SELECT randomblob(20) FROM n"}`), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("fill big: %d %s", resp.StatusCode, body)
		}
		resp, body = s.do("POST", "/db/big/export/dump", []byte(`{"format":"csv","chunkSize":1}`), nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit: %d %s", resp.StatusCode, body)
		}
		var sub struct{ JobID string }
		apiResult(t, body, &sub)
		row := fmt.Sprintf(`document.querySelector('tr[data-job=%q]')`, sub.JobID)
		waitFor(t, ctx, "the running row", row+` && `+row+`.querySelector('.status').textContent === 'processing' && `+row+`.querySelector('button.cancel')`, jobWait)
		do(t, ctx, "click cancel", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-job=%q] button.cancel`, sub.JobID))))
		waitFor(t, ctx, "the cancelled row", row+`.querySelector('.status').textContent === 'cancelled' && !`+row+`.querySelector('button.cancel')`, jobWait)
		_, body = s.do("GET", "/db/big/export/dump/status/"+sub.JobID, nil, nil)
		var st struct{ Status string }
		apiResult(t, body, &st)
		if st.Status != "cancelled" {
			t.Fatalf("API says %s", body)
		}
	})
}

// TestConsoleBrowserToken signs in to a server with tokens: the console
// asks for a token, refuses a wrong one with the server's message, keeps
// the right one in sessionStorage only and then shows the databases.
func TestConsoleBrowserToken(t *testing.T) {
	ctx := newTab(t)
	const token = "console-admin-token"
	s := startConsoleServer(t, token)
	do(t, ctx, "open /ui/", chromedp.Navigate(s.base+"/ui/"))
	waitFor(t, ctx, "the sign-in form", `!document.getElementById('signin').hidden && document.getElementById('console').hidden`, 20*time.Second)
	do(t, ctx, "a wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "wrong"),
		chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)))
	waitFor(t, ctx, "the refusal", `document.getElementById('signin-why').textContent.includes('invalid bearer token') && !document.getElementById('signin').hidden`, 10*time.Second)
	do(t, ctx, "the right token",
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)))
	waitFor(t, ctx, "the console", `!document.getElementById('console').hidden && document.querySelectorAll('#db-table tbody tr').length === 2`, 20*time.Second)
	if got := evalString(t, ctx, `sessionStorage.getItem('sluice.token') + '|' + localStorage.length + '|' + document.cookie`); got != token+"|0|" {
		t.Fatalf("storage: %q", got)
	}

	// A link cannot carry the token: Download follows the signed URL.
	s.query(map[string]any{"sql": "CREATE TABLE t(x); INSERT INTO t VALUES (1)"})
	resp, body := s.do("POST", "/export/dump", []byte(`{"format":"sql"}`), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	var sub struct{ JobID string }
	apiResult(t, body, &sub)
	waitFor(t, ctx, "the completed row", fmt.Sprintf(`document.querySelector('tr[data-job=%q] a.download')`, sub.JobID), jobWait)
	downloadFromRow(t, ctx, s, sub.JobID)
}

// downloadFromRow clicks a completed job's Download link and checks the
// file the browser saves against the status's SHA-256.
func downloadFromRow(t *testing.T, ctx context.Context, s *e2eServer, jobID string) {
	t.Helper()
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dl, EventsEnabled: new(true),
	}); err != nil {
		t.Fatal(err)
	}
	resp, body := s.do("GET", "/export/dump/status/"+jobID, nil, nil)
	var st struct{ SHA256 string }
	apiResult(t, body, &st)
	if resp.StatusCode != http.StatusOK || st.SHA256 == "" {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	progress := chromedp.BrowserEvents(dctx, browser.DownloadProgress)
	do(t, ctx, "click download", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-job=%q] a.download`, jobID))))
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("download cancelled")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(dl, ev.GUID)
			break
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(got)
	if hex.EncodeToString(sum[:]) != st.SHA256 {
		t.Fatalf("downloaded %d bytes with SHA-256 %x, status says %s", len(got), sum, st.SHA256)
	}
	if !strings.Contains(string(got), "CREATE TABLE") {
		t.Fatalf("download is not a SQL dump: %.200s", got)
	}
}
