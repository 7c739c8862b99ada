package file

import (
	"github.com/sluice-dev/sluice/internal/testsupport"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/storetest"
)

// newTestStore returns a store in a temporary directory whose signed URLs
// are served by an httptest server on 127.0.0.1.
func newTestStore(t *testing.T, limits objstore.Limits, fsys FS) *Store {
	t.Helper()
	var h atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*h.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s, err := New(t.TempDir(), Options{Limits: limits, SigningKey: []byte("test-secret"), BaseURL: srv.URL, FS: fsys},
		testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	handler := s.Handler()
	h.Store(&handler)
	return s
}

// TestConformance runs the whole suite with small parts (fast) and, unless
// -short, the part-size-sensitive subset with S3's real 5 MiB minimum.
func TestConformance(t *testing.T) {
	t.Run("small parts", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) objstore.Store {
			return newTestStore(t, objstore.Limits{MinPartSize: 64 << 10}, nil)
		}, storetest.Options{})
	})
	t.Run("S3 limits", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: skipping the run with 5 MiB parts")
		}
		storetest.Run(t, func(t *testing.T) objstore.Store {
			return newTestStore(t, objstore.Limits{}, nil)
		}, storetest.Options{Only: []string{"Multipart", "PartTooSmall", "UploadPartCopy",
			"WriterSizes", "WriterOutgrow", "WriterResumeAfterCrash"}})
	})
}
