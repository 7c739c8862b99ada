package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/objstore"
)

// TestSignedURLBindsVersion: a signed /files/ URL serves the object it
// was made for, and not another written later at the same key (as when
// a job's export is deleted and a new job reuses the key), even one with
// the same bytes.
func TestSignedURLBindsVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	put := func(body string) {
		t.Helper()
		if _, err := e.store.Put(ctx, "exports/db.sql", strings.NewReader(body), int64(len(body)), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("first export")
	u, err := e.store.PresignGet(ctx, "exports/db.sql", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u)
	if code, b, _ := e.call("GET", pu.RequestURI(), "", ""); code != http.StatusOK || string(b) != "first export" {
		t.Fatalf("fresh URL: %d %q", code, b)
	}
	for _, next := range []string{"second export, other bytes", "first export"} {
		if err := e.store.Delete(ctx, "exports/db.sql"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // a later write, as a later job's
		put(next)
		code, b, _ := e.call("GET", pu.RequestURI(), "", "")
		if code != http.StatusNotFound {
			t.Fatalf("old URL after the key was rewritten with %q: %d %q, want 404", next, code, b)
		}
		if !strings.Contains(string(b), "replaced") {
			t.Errorf("404 does not say the object was replaced: %s", b)
		}
	}
	// A URL signed now serves the new object.
	u2, err := e.store.PresignGet(ctx, "exports/db.sql", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pu2, _ := url.Parse(u2)
	if code, b, _ := e.call("GET", pu2.RequestURI(), "", ""); code != http.StatusOK || string(b) != "first export" {
		t.Fatalf("new URL: %d %q", code, b)
	}
	// Moving the version from the new URL onto the old one breaks the
	// signature.
	q := pu.Query()
	q.Set("v", pu2.Query().Get("v"))
	pu.RawQuery = q.Encode()
	if code, _, _ := e.call("GET", pu.RequestURI(), "", ""); code != http.StatusForbidden {
		t.Fatalf("old URL with the new version: %d, want 403", code)
	}
}
