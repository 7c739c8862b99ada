package storetest

import (
	"context"
	"io"
	"testing"

	"github.com/sluice-dev/sluice/objstore"
)

// ReadObject returns the whole object at key in s, failing t if it
// cannot be read.
func ReadObject(t testing.TB, s objstore.Store, key string) []byte {
	t.Helper()
	rc, _, err := s.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
