package sqlload

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// BenchmarkSplit measures the splitter alone on dump-like text.
func BenchmarkSplit(b *testing.B) {
	var buf bytes.Buffer
	for i := 0; buf.Len() < 8<<20; i++ {
		fmt.Fprintf(&buf, "INSERT INTO t VALUES(%d,'name %d; with ''quotes''',X'00FF00FF00FF',%d.5);\n", i, i, i)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sp := newSplitter(bytes.NewReader(data), DefaultMaxStatementBytes)
		for {
			if _, _, err := sp.next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
