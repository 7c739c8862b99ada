package api

import (
	"bufio"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"zombiezen.com/go/sqlite"
)

// lazyHeader sends the response headers with the first byte, so that an
// error before any output (an unknown table, say) can still be a JSON
// error. With no Content-Length set, the response is chunked.
type lazyHeader struct {
	w      http.ResponseWriter
	before func() // sets headers, called before the first byte
	done   bool
}

func (l *lazyHeader) Write(b []byte) (int, error) {
	if !l.done {
		l.done = true
		l.before()
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(b)
}

// handleLegacyDump is the synchronous GET /export/dump. It streams the
// dump engine's output straight to the client (chunked, constant memory,
// no deadline of ours). Query parameters: format, tables (or table),
// exclude, compress, chunkSize.
func (s *Server) handleLegacyDump(w http.ResponseWriter, r *http.Request) error {
	d, err := s.database(r)
	if err != nil {
		return err
	}
	if s.deps.Dumper == nil {
		return apiErr(http.StatusServiceUnavailable, "unavailable", "the dump engine is not configured")
	}
	p := newSpecParams()
	if err := p.addValues(r.URL.Query(), false); err != nil {
		return err
	}
	spec, err := p.spec(d.name)
	if err != nil {
		return err
	}
	if err := s.checkTables(r, d, append(append([]string(nil), spec.Tables...), spec.Exclude...)); err != nil {
		return err
	}
	name := fmt.Sprintf("%s-%s%s", d.name, time.Now().UTC().Format("20060102T150405Z"), spec.Ext())
	if d.name == s.defDB && spec.Format == sluice.FormatSQL && spec.Compression == sluice.CompressNone {
		name = "database_dump.sql" // StarbaseDB's name
	}
	lh := &lazyHeader{w: w, before: func() {
		w.Header().Set("Content-Type", spec.ContentType())
		w.Header().Set("Content-Disposition", attachment(name))
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}}
	var out io.Writer = lh
	var closer io.Closer
	switch spec.Compression {
	case sluice.CompressGzip:
		zw := gzip.NewWriter(lh)
		out, closer = zw, zw
	case sluice.CompressZstd:
		zw, err := zstd.NewWriter(lh, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		out, closer = zw, zw
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	opts := dump.Options{
		Format:    spec.Format,
		Tables:    spec.Tables,
		Exclude:   spec.Exclude,
		ChunkSize: spec.ChunkSize,

		PreserveRowids: spec.PreserveRowids,
		PlainCSV:       spec.PlainCSV(),
		NoDigests:      true, // a streamed response has no manifest
	}
	if err := s.deps.Dumper.Dump(r.Context(), bw, d.path, opts); err != nil {
		return fmt.Errorf("dump %s: %w", d.name, err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if closer != nil {
		if err := closer.Close(); err != nil {
			return err
		}
	}
	if !lh.done { // an empty dump still answers 200 with headers
		lh.Write(nil)
	}
	return nil
}

func (s *Server) handleExportCSV(w http.ResponseWriter, r *http.Request) error {
	return s.exportTable(w, r, "csv")
}

func (s *Server) handleExportJSON(w http.ResponseWriter, r *http.Request) error {
	return s.exportTable(w, r, "json")
}

// exportTable streams one table (or view) as CSV with a header row, or
// as a JSON array of objects, from a read transaction on a connection of
// its own: constant memory, one snapshot, no writer blocked (WAL).
func (s *Server) exportTable(w http.ResponseWriter, r *http.Request, format string) error {
	d, err := s.database(r)
	if err != nil {
		return err
	}
	table := r.PathValue("table")
	conn, err := d.openRead()
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetInterrupt(r.Context().Done())
	if err := exec(conn, "BEGIN"); err != nil {
		return sqlErr(err)
	}
	defer exec(conn, "ROLLBACK")
	if _, err := tableKind(conn, table); err != nil {
		return err
	}
	stmt, _, err := conn.PrepareTransient("SELECT * FROM " + quoteIdent(table))
	if err != nil {
		return sqlErr(err)
	}
	defer stmt.Finalize()

	w.Header().Set("Content-Type", map[string]string{"csv": "text/csv; charset=utf-8", "json": "application/json"}[format])
	w.Header().Set("Content-Disposition", attachment(table+"_export."+format))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	bw := bufio.NewWriterSize(w, 64<<10)
	if format == "csv" {
		err = writeCSV(bw, stmt)
	} else {
		err = writeJSONRows(bw, stmt)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// writeCSV writes a header row and then each row: NULL as an empty
// field, reals in the shortest exact form, blobs in base64.
func writeCSV(bw *bufio.Writer, stmt *sqlite.Stmt) error {
	cw := csv.NewWriter(bw)
	n := stmt.ColumnCount()
	rec := make([]string, n)
	for i := range rec {
		rec[i] = stmt.ColumnName(i)
	}
	if err := cw.Write(rec); err != nil {
		return err
	}
	for {
		more, err := stmt.Step()
		if err != nil {
			return sqlErr(err)
		}
		if !more {
			break
		}
		for i := 0; i < n; i++ {
			switch stmt.ColumnType(i) {
			case sqlite.TypeNull:
				rec[i] = ""
			case sqlite.TypeInteger:
				rec[i] = strconv.FormatInt(stmt.ColumnInt64(i), 10)
			case sqlite.TypeFloat:
				rec[i] = string(appendFloat(nil, stmt.ColumnFloat(i)))
				rec[i] = strings.Trim(rec[i], `"`)
			case sqlite.TypeBlob:
				buf := make([]byte, stmt.ColumnLen(i))
				stmt.ColumnBytes(i, buf)
				rec[i] = base64.StdEncoding.EncodeToString(buf)
			default:
				rec[i] = stmt.ColumnText(i)
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeJSONRows writes a JSON array of row objects, one row per line.
func writeJSONRows(bw *bufio.Writer, stmt *sqlite.Stmt) error {
	n := stmt.ColumnCount()
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = append(appendJSONString(nil, stmt.ColumnName(i)), ':')
	}
	bw.WriteString("[")
	var b []byte
	for rows := 0; ; rows++ {
		more, err := stmt.Step()
		if err != nil {
			return sqlErr(err)
		}
		if !more {
			break
		}
		b = b[:0]
		if rows > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n{"...)
		for i := 0; i < n; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, keys[i]...)
			b = appendValue(b, stmt, i)
		}
		b = append(b, '}')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	_, err := bw.WriteString("\n]\n")
	return err
}

// checkTables answers 404 for a table that d does not have, before a
// streamed dump starts.
func (s *Server) checkTables(r *http.Request, d *db, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	conn, err := d.take(r.Context(), connUse{})
	if err != nil {
		return err
	}
	defer d.put(conn)
	for _, t := range tables {
		if _, err := tableKind(conn, t); err != nil {
			return err
		}
	}
	return nil
}
