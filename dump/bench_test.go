package dump

import (
	"context"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"os"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
)

// benchDB builds (once per path) a database of mixed rows: small rows of
// integers, short text and REALs, plus a table of 4 KiB BLOBs. rows sets
// its size; 1.5M rows is about 200 MB.
func benchDB(tb testing.TB, path string, rows int) string {
	tb.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	for _, s := range []string{
		"PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", "BEGIN",
		"CREATE TABLE events(id INTEGER PRIMARY KEY, ts INTEGER, kind TEXT, amount REAL, note TEXT, flag)",
		"CREATE TABLE blobs(id INTEGER PRIMARY KEY, name TEXT, data BLOB)",
	} {
		st, _, err := c.PrepareTransient(s)
		if err != nil {
			tb.Fatal(err)
		}
		st.Step()
		st.Finalize()
	}
	ins := c.Prep("INSERT INTO events(ts, kind, amount, note, flag) VALUES(?1, ?2, ?3, ?4, ?5)")
	kinds := []string{"click", "view", "purchase", "refund", "signup"}
	for i := 0; i < rows; i++ {
		ins.BindInt64(1, 1700000000000+int64(i)*37)
		ins.BindText(2, kinds[i%len(kinds)])
		ins.BindFloat(3, float64(i%100000)/100)
		ins.BindText(4, fmt.Sprintf("note %d with some text, it's here", i))
		if i%3 == 0 {
			ins.BindNull(5)
		} else {
			ins.BindInt64(5, int64(i%2))
		}
		if _, err := ins.Step(); err != nil {
			tb.Fatal(err)
		}
		ins.Reset()
	}
	blob := make([]byte, 4096)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	insB := c.Prep("INSERT INTO blobs(name, data) VALUES(?1, ?2)")
	for i := 0; i < rows/100; i++ {
		insB.BindText(1, fmt.Sprintf("blob-%d", i))
		blob[0] = byte(i)
		insB.BindBytes(2, blob)
		if _, err := insB.Step(); err != nil {
			tb.Fatal(err)
		}
		insB.Reset()
	}
	st, _, _ := c.PrepareTransient("COMMIT")
	st.Step()
	st.Finalize()
	return path
}

// BenchmarkDumpSQL dumps a generated database in the sql format to
// io.Discard. SLUICE_BENCH_DB names a database to reuse (it is created
// if missing, with SLUICE_BENCH_ROWS rows; default 100k rows in a temp dir).
func BenchmarkDumpSQL(b *testing.B) {
	path := os.Getenv("SLUICE_BENCH_DB")
	rows := 100_000
	if n := os.Getenv("SLUICE_BENCH_ROWS"); n != "" {
		fmt.Sscan(n, &rows)
	}
	if path == "" {
		path = filepath.Join(b.TempDir(), "bench.db")
	}
	benchDB(b, path, rows)
	ctx := context.Background()
	var total int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src, err := Open(ctx, path, Options{}, testsupport.Logger(b))
		if err != nil {
			b.Fatal(err)
		}
		cur, err := src.Dump(ctx, io.Discard, Cursor{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		src.Close()
		total = cur.Bytes
	}
	b.SetBytes(total)
}
