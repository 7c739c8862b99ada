package dump

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
	"zombiezen.com/go/sqlite"
)

// blobChunk is the size of the C buffer that large values are read
// through. One sqlite3_blob_read call per chunk lets SQLite read whole
// overflow pages straight into the buffer (its direct overflow read), one
// pread each, as the C shell's column_blob does; the driver's Blob.Read
// reads in 4 KiB steps that straddle pages, so every page went through the
// page cache and was read twice. A 1 MiB value needs one call.
const blobChunk = 1 << 20

// blobReader reads large values with SQLite's incremental blob I/O on the
// Source's connection (same read transaction, same snapshot), through one
// reusable C buffer and one blob handle that is moved from row to row
// with sqlite3_blob_reopen. It belongs to the reader goroutine.
type blobReader struct {
	db     uintptr // sqlite3*, borrowed from the zombiezen connection
	tls    *libc.TLS
	buf    uintptr // blobChunk bytes of C memory
	blob   uintptr // open sqlite3_blob*, or 0
	table  string  // table and column that blob is open on
	column string
}

// rawConn returns the sqlite3* handle of c, or 0 if the driver's layout is
// not the one this was written for (then the caller uses Conn.OpenBlob).
// zombiezen.com/go/sqlite does not export the handle; reflect reads the
// unexported uintptr field without unsafe, and fails closed.
func rawConn(c *sqlite.Conn) uintptr {
	if c == nil {
		return 0
	}
	f := reflect.ValueOf(c).Elem().FieldByName("conn")
	if !f.IsValid() || f.Kind() != reflect.Uintptr {
		return 0
	}
	return uintptr(f.Uint())
}

// newBlobReader returns a reader on c, or nil if the raw handle is not
// available or the buffer cannot be allocated.
func newBlobReader(c *sqlite.Conn) *blobReader {
	db := rawConn(c)
	if db == 0 {
		return nil
	}
	tls := libc.NewTLS()
	buf := libc.Xmalloc(tls, blobChunk)
	if buf == 0 {
		tls.Close()
		return nil
	}
	return &blobReader{db: db, tls: tls, buf: buf}
}

// close releases the blob handle, the buffer and the TLS. The blob handle
// must be closed before the connection's transaction ends.
func (r *blobReader) close() {
	if r == nil {
		return
	}
	r.closeBlob()
	libc.Xfree(r.tls, r.buf)
	r.tls.Close()
}

func (r *blobReader) closeBlob() {
	if r.blob != 0 {
		sqlite3.Xsqlite3_blob_close(r.tls, r.blob)
		r.blob = 0
	}
}

// err converts a result code into an error carrying SQLite's message.
func (r *blobReader) err(op string, rc int32) error {
	msg := libc.GoString(sqlite3.Xsqlite3_errmsg(r.tls, r.db))
	return fmt.Errorf("%s: %w: %s", op, sqlite.ResultCode(rc).ToError(), msg)
}

// open positions the blob handle on the given row, reusing the handle
// when it is already open on the same table and column.
func (r *blobReader) open(table, column string, rowid int64) error {
	if r.blob != 0 && r.table == table && r.column == column {
		if rc := sqlite3.Xsqlite3_blob_reopen(r.tls, r.blob, rowid); rc != sqlite3.SQLITE_OK {
			// A failed reopen leaves the handle aborted; drop it.
			err := r.err(fmt.Sprintf("blob reopen %q.%q row %d", table, column, rowid), rc)
			r.closeBlob()
			return err
		}
		return nil
	}
	r.closeBlob()
	cdb, err := libc.CString("main")
	if err != nil {
		return err
	}
	defer libc.Xfree(r.tls, cdb)
	ctable, err := libc.CString(table)
	if err != nil {
		return err
	}
	defer libc.Xfree(r.tls, ctable)
	ccol, err := libc.CString(column)
	if err != nil {
		return err
	}
	defer libc.Xfree(r.tls, ccol)
	pp := r.tls.Alloc(8)
	defer r.tls.Free(8)
	clear(libc.GoBytes(pp, 8))
	rc := sqlite3.Xsqlite3_blob_open(r.tls, r.db, cdb, ctable, ccol, rowid, 0, pp)
	blob := readPtr(libc.GoBytes(pp, 8))
	if rc != sqlite3.SQLITE_OK {
		err := r.err(fmt.Sprintf("blob open %q.%q row %d", table, column, rowid), rc)
		if blob != 0 {
			sqlite3.Xsqlite3_blob_close(r.tls, blob)
		}
		return err
	}
	r.blob, r.table, r.column = blob, table, column
	return nil
}

// read reads the value at table.column, row rowid, into *arena.
// stopped is polled between chunks so a huge value can be abandoned.
func (r *blobReader) read(table, column string, rowid int64, arena *[]byte, stopped func() bool) ([]byte, error) {
	if err := r.open(table, column, rowid); err != nil {
		return nil, err
	}
	n := int(sqlite3.Xsqlite3_blob_bytes(r.tls, r.blob))
	dst := reserve(arena, n)
	for off := 0; off < n; off += blobChunk {
		if off > 0 && stopped() {
			return nil, fmt.Errorf("blob read: stopped")
		}
		k := min(blobChunk, n-off)
		if rc := sqlite3.Xsqlite3_blob_read(r.tls, r.blob, r.buf, int32(k), int32(off)); rc != sqlite3.SQLITE_OK {
			return nil, r.err(fmt.Sprintf("blob read %q.%q row %d", table, column, rowid), rc)
		}
		copy(dst[off:off+k], libc.GoBytes(r.buf, k))
	}
	return dst, nil
}

// readPtr decodes a C pointer stored in b (native byte order).
func readPtr(b []byte) uintptr {
	if unsafe.Sizeof(uintptr(0)) == 4 {
		return uintptr(binary.NativeEndian.Uint32(b))
	}
	return uintptr(binary.NativeEndian.Uint64(b))
}

// blobHolder creates the blobReader on first use, so that dumps without
// large values allocate nothing; it remembers a failure to create one.
type blobHolder struct {
	r     *blobReader
	tried bool
}

func (h *blobHolder) get(c *sqlite.Conn) *blobReader {
	if !h.tried {
		h.tried = true
		h.r = newBlobReader(c)
	}
	return h.r
}

func (h *blobHolder) close() {
	h.r.close()
	h.r = nil
}
