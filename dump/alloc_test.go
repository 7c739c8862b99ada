package dump

import (
	"context"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
)

// TestAllocationsDoNotGrowWithRows: the hot loop allocates per page, not
// per row or per value, so ten times the rows costs (almost) no more
// allocations.
func TestAllocationsDoNotGrowWithRows(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, rows int) string {
		path := filepath.Join(dir, name)
		c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		mustExec(t, c, "BEGIN; CREATE TABLE t(id INTEGER PRIMARY KEY, i, r REAL, s TEXT, b BLOB, q TEXT)")
		ins := c.Prep("INSERT INTO t(i, r, s, b, q) VALUES(?1, ?2, ?3, ?4, ?5)")
		for i := 0; i < rows; i++ {
			ins.BindInt64(1, int64(i)*7919)
			ins.BindFloat(2, float64(i)/100+0.01)
			ins.BindText(3, fmt.Sprintf("row %d", i))
			ins.BindBytes(4, []byte{byte(i), 1, 2})
			ins.BindText(5, "it's\nquoted")
			stepReset(t, ins)
		}
		mustExec(t, c, "COMMIT")
		return path
	}
	small, large := mk("small.db", 2000), mk("large.db", 20000)
	ctx := context.Background()
	allocs := func(path string) float64 {
		return testing.AllocsPerRun(2, func() {
			src, err := Open(ctx, path, Options{}, testsupport.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.Dump(ctx, io.Discard, Cursor{}, nil); err != nil {
				t.Fatal(err)
			}
			src.Close()
		})
	}
	a, b := allocs(small), allocs(large)
	t.Logf("allocations: %.0f for 2000 rows, %.0f for 20000 rows", a, b)
	if perRow := (b - a) / 18000; perRow > 0.05 {
		t.Errorf("%.0f allocations for 2000 rows, %.0f for 20000: %.3f per extra row", a, b, perRow)
	}
}
