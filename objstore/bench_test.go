package objstore_test

import (
	"context"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/objstore"
)

// nullStore accepts parts and discards them, so BenchmarkWriter measures
// the Writer's own cost (copying, MD5, SHA-256, scheduling).
type nullStore struct{ objstore.Store }

func (nullStore) CreateMultipart(context.Context, string, objstore.PutOptions) (string, error) {
	return "u", nil
}

func (nullStore) UploadPart(_ context.Context, _, _ string, n int, r io.Reader, size int64, sum string) (objstore.Part, error) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return objstore.Part{}, err
	}
	return objstore.Part{Number: n, Size: size, ETag: "e", Checksum: sum}, nil
}

func (nullStore) CompleteMultipart(_ context.Context, key, _ string, parts []objstore.Part, _ objstore.PutOptions) (objstore.ObjectInfo, error) {
	var n int64
	for _, p := range parts {
		n += p.Size
	}
	return objstore.ObjectInfo{Key: key, Size: n, LastModified: time.Now()}, nil
}

func BenchmarkWriter(b *testing.B) {
	const total = 256 << 20
	chunk := make([]byte, 64<<10)
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		w, err := objstore.NewWriter(context.Background(), nullStore{}, "bench", objstore.WriterOptions{},
			testsupport.Logger(b))
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
