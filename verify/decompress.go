package verify

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-dev/sluice"
)

// Decompress returns a reader of r's decompressed bytes. The kind
// comes from the name's suffix when it has one, else from magic bytes.
func Decompress(r io.Reader, byName sluice.Compression) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 256<<10)
	kind := byName
	if kind == sluice.CompressNone {
		magic, err := br.Peek(4)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, err
		}
		switch {
		case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
			kind = sluice.CompressGzip
		case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
			kind = sluice.CompressZstd
		}
	}
	switch kind {
	case sluice.CompressGzip:
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return gz, func() { gz.Close() }, nil
	case sluice.CompressZstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}
