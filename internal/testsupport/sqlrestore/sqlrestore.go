// Package sqlrestore is the verify.Restorer that tests hand to the code
// under test: it loads a SQL dump with sqlload into a new database.
// cmd/sluice wires its own restore, which adds the file handling and
// checks. It is a package of its own, not part of testsupport, because
// sqlload's own tests import testsupport.
package sqlrestore

import (
	"context"
	"io"

	"zombiezen.com/go/sqlite"

	"github.com/sluice-dev/sluice/sqlload"
)

// Restore loads the SQL dump r into the database at path, atomically.
func Restore(ctx context.Context, path string, r io.Reader) error {
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = sqlload.Load(ctx, c, r, sqlload.Options{Atomic: true})
	return err
}
