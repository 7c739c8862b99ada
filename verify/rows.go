package verify

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"zombiezen.com/go/sqlite"
)

// FirstDifference walks table in two databases (the source and a
// restored copy) in rowid order, or primary-key order for a WITHOUT ROWID
// table, and describes the source's key of the first row whose values or
// storage classes differ. It returns "" when it finds none (a difference
// in the rows' order only). Both files are opened read-only.
func FirstDifference(ctx context.Context, source, restored, table string) (string, error) {
	a, err := openRO(source)
	if err != nil {
		return "", err
	}
	defer a.Close()
	b, err := openRO(restored)
	if err != nil {
		return "", err
	}
	defer b.Close()
	a.SetInterrupt(ctx.Done())
	b.SetInterrupt(ctx.Done())
	q := `"` + strings.ReplaceAll(table, `"`, `""`) + `"`
	withRowid := true
	sa, _, err := a.PrepareTransient("SELECT rowid, * FROM " + q + " ORDER BY rowid")
	if err != nil {
		// WITHOUT ROWID: a plain scan is in primary-key order.
		withRowid = false
		if sa, _, err = a.PrepareTransient("SELECT NULL, * FROM " + q); err != nil {
			return "", fmt.Errorf("verify: read %s: %w", table, err)
		}
	}
	defer sa.Finalize()
	order := " ORDER BY rowid"
	sel := "SELECT rowid, * FROM "
	if !withRowid {
		order, sel = "", "SELECT NULL, * FROM "
	}
	sb, _, err := b.PrepareTransient(sel + q + order)
	if err != nil {
		return "", fmt.Errorf("verify: read restored %s: %w", table, err)
	}
	defer sb.Finalize()
	for n := int64(1); ; n++ {
		okA, err := sa.Step()
		if err != nil {
			return "", err
		}
		okB, err := sb.Step()
		if err != nil {
			return "", err
		}
		key := func(st *sqlite.Stmt) string {
			if withRowid {
				return fmt.Sprintf("rowid %d", st.ColumnInt64(0))
			}
			return fmt.Sprintf("row %d in primary-key order", n)
		}
		switch {
		case !okA && !okB:
			return "", nil
		case !okA:
			return fmt.Sprintf("%s (extra row in the dump)", key(sb)), nil
		case !okB:
			return fmt.Sprintf("%s (missing from the dump)", key(sa)), nil
		}
		if !sameRow(sa, sb) {
			return key(sa), nil
		}
	}
}

// sameRow compares the current rows after the key column.
func sameRow(a, b *sqlite.Stmt) bool {
	if a.ColumnCount() != b.ColumnCount() {
		return false
	}
	for i := 1; i < a.ColumnCount(); i++ {
		ta, tb := a.ColumnType(i), b.ColumnType(i)
		if ta != tb {
			return false
		}
		switch ta {
		case sqlite.TypeInteger:
			if a.ColumnInt64(i) != b.ColumnInt64(i) {
				return false
			}
		case sqlite.TypeFloat:
			fa, fb := a.ColumnFloat(i), b.ColumnFloat(i)
			if fa != fb || (fa == 0 && (1/fa > 0) != (1/fb > 0)) {
				return false
			}
		case sqlite.TypeText, sqlite.TypeBlob:
			if !bytes.Equal(columnBytes(a, i), columnBytes(b, i)) {
				return false
			}
		}
	}
	return true
}

func columnBytes(st *sqlite.Stmt, i int) []byte {
	buf := make([]byte, st.ColumnLen(i))
	st.ColumnBytes(i, buf)
	return buf
}

func openRO(path string) (*sqlite.Conn, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro"}
	c, err := sqlite.OpenConn(u.String(), sqlite.OpenReadOnly|sqlite.OpenURI)
	if err != nil {
		return nil, fmt.Errorf("verify: open %s: %w", path, err)
	}
	return c, nil
}
