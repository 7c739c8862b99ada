package s3

import (
	"context"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"testing"

	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/storetest"
)

// TestConformance runs the objstore conformance suite against versitygw,
// twice: at the bucket root, and under a store prefix (keys are then
// stored as "<prefix>/<key>" and must come back without it).
func TestConformance(t *testing.T) {
	for _, prefix := range []string{"", "conformance/prefix"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			ts := server(t)
			bucket := ts.newBucket(t)
			cfg := ts.config(bucket)
			cfg.Prefix = prefix
			s, err := New(context.Background(), cfg, testsupport.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			storetest.Run(t, func(t *testing.T) objstore.Store { return s }, storetest.Options{Logger: testsupport.Logger(t)})
		})
	}
}
