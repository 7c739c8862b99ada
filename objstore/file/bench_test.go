package file

import (
	"context"
	"testing"

	"github.com/sluice-dev/sluice/internal/testsupport"
	"github.com/sluice-dev/sluice/objstore"
)

// BenchmarkWriterToFileStore streams 256 MiB through an objstore.Writer
// into the file store (in-place parts, Complete without a copy).
func BenchmarkWriterToFileStore(b *testing.B) {
	const total = 256 << 20
	chunk := make([]byte, 64<<10)
	b.SetBytes(total)
	for b.Loop() {
		s, err := New(b.TempDir(), Options{}, testsupport.Logger(b))
		if err != nil {
			b.Fatal(err)
		}
		w, err := objstore.NewWriter(context.Background(), s, "bench", objstore.WriterOptions{}, testsupport.Logger(b))
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < total; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
