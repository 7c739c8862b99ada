package api

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/sqlload"
	"zombiezen.com/go/sqlite"
)

// importBody returns the request's upload: the first file part of a
// multipart form, or the raw body; gzip or zstd (by Content-Encoding or
// by magic number) is decompressed. Both the bytes received and the
// bytes after decompression are bounded by MaxImportBytes (413).
func (s *Server) importBody(w http.ResponseWriter, r *http.Request) (io.Reader, func(), error) {
	body := io.Reader(http.MaxBytesReader(w, r.Body, s.cfg.MaxImportBytes))
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, nil, badRequest("bad_multipart", err.Error())
		}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil, nil, badRequest("bad_multipart", "the form has no file part")
			}
			if err != nil {
				return nil, nil, badRequest("bad_multipart", err.Error())
			}
			if p.FileName() != "" {
				body = p
				break
			}
			p.Close()
		}
	}
	br := bufio.NewReaderSize(body, 64<<10)
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if enc == "" || enc == "identity" {
		magic, _ := br.Peek(4)
		switch {
		case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
			enc = "gzip"
		case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
			enc = "zstd"
		}
	}
	var out io.Reader = br
	closeFn := func() {}
	switch enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, bodyError(err)
		}
		out, closeFn = zr, func() { zr.Close() }
	case "zstd":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, bodyError(err)
		}
		out, closeFn = zr, zr.Close
	default:
		return nil, nil, apiErr(http.StatusUnsupportedMediaType, "unsupported_encoding", fmt.Sprintf("Content-Encoding %q is not supported (gzip, zstd)", enc))
	}
	return &limitedBody{r: out, left: s.cfg.MaxImportBytes}, closeFn, nil
}

// recordLimit bounds one record (a CSV or JSON row) of an upload. The
// table writer calls rowDone after each row; a read that takes the bytes
// since then over twice max (plus the decoders' buffers) fails with
// sluice.ErrTooLarge. Twice,
// because the decoders read ahead by up to their buffer, which after a
// row near max is about max: so a row over max may pass, one over twice
// max never does, and memory for one row stays within a few times max.
type recordLimit struct {
	r     io.Reader
	max   int64
	total int64 // bytes read
	mark  int64 // total when the last row ended
}

func (l *recordLimit) Read(p []byte) (int, error) {
	if l.total-l.mark > 2*l.max+recordSlack {
		return 0, l.tooLarge()
	}
	n, err := l.r.Read(p)
	l.total += int64(n)
	if l.total-l.mark > 2*l.max+recordSlack {
		return 0, l.tooLarge()
	}
	return n, err
}

// recordSlack allows for the decoders' own buffers.
const recordSlack = 64 << 10

func (l *recordLimit) tooLarge() error {
	return fmt.Errorf("%w: a row of the upload is over %d bytes (limits.maxImportStatementBytes)", sluice.ErrTooLarge, l.max)
}

func (l *recordLimit) rowDone() { l.mark = l.total }

// limitedBody bounds the decompressed size and marks read failures as
// the caller's (a corrupt gzip stream, a connection cut short).
type limitedBody struct {
	r    io.Reader
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("%w: the upload is over the configured limit once decompressed", sluice.ErrTooLarge)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if err != nil && err != io.EOF {
		err = bodyError(err)
	}
	return n, err
}

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	var ae *Error
	if errors.As(err, &mbe) || errors.Is(err, sluice.ErrTooLarge) || errors.As(err, &ae) {
		return err
	}
	return fmt.Errorf("%w: read upload: %v", sluice.ErrInvalid, err)
}

// importResult is the "result" of an import response.
type importResult struct {
	Message string `json:"message"`
	// FailedStatements is StarbaseDB's list of rows that failed; an
	// import here is all or nothing, so it is always empty.
	FailedStatements []string `json:"failedStatements"`
	Statements       int64    `json:"statements,omitempty"`
	Rows             int64    `json:"rows,omitempty"`
	Bytes            int64    `json:"bytes,omitempty"`
}

// legacyDumpHeader starts the dumps of StarbaseDB's legacy GET
// /export/dump: "SQLite format 3" and a NUL on a line of their own.
const legacyDumpHeader = "SQLite format 3"

// skipLegacyHeader drops the first line of a StarbaseDB legacy dump, which
// is not SQL; the rest (its "-- Table:" comments, CREATEs and INSERTs)
// loads as it is.
func skipLegacyHeader(body io.Reader) io.Reader {
	br := bufio.NewReader(body)
	if head, _ := br.Peek(len(legacyDumpHeader)); string(head) == legacyDumpHeader {
		br.ReadString('\n')
	}
	return br
}

// handleImportDump loads a SQL dump in one transaction, all or nothing.
func (s *Server) handleImportDump(w http.ResponseWriter, r *http.Request) error {
	return s.withImport(w, r, func(d *db, body io.Reader, conn *sqlite.Conn) error {
		// The dump is untrusted, whoever sends it: sqlload's
		// authorizer refuses what a dump never needs, and quick_check
		// runs before the commit.
		st, err := sqlload.Load(r.Context(), conn, skipLegacyHeader(body), sqlload.Options{
			Atomic:            true,
			Check:             true,
			MaxStatementBytes: int(s.cfg.MaxImportStatementBytes),
			Authorizer:        d.pool.authorizer(conn),
		})
		if err != nil {
			return sqlErr(err)
		}
		writeJSON(w, http.StatusOK, importResult{
			Message:          fmt.Sprintf("SQL dump import completed. %d statements succeeded, 0 failed.", st.Statements),
			FailedStatements: []string{},
			Statements:       st.Statements, Bytes: st.Bytes,
		})
		return nil
	})
}

// withImport resolves the path's database, opens the (possibly
// compressed) upload and takes a connection, then runs fn over them; it
// releases all three when fn returns.
func (s *Server) withImport(w http.ResponseWriter, r *http.Request, fn func(d *db, body io.Reader, conn *sqlite.Conn) error) error {
	d, err := s.database(r)
	if err != nil {
		return err
	}
	body, closeBody, err := s.importBody(w, r)
	if err != nil {
		return err
	}
	defer closeBody()
	// A statement or row is at most MaxImportStatementBytes, and so is
	// any value SQLite builds while loading them.
	conn, err := d.take(r.Context(), connUse{maxValue: s.cfg.MaxImportStatementBytes})
	if err != nil {
		return err
	}
	defer d.put(conn)
	return fn(d, body, conn)
}

// tableWriter inserts rows into one table inside a transaction, with one
// prepared statement per distinct column list.
type tableWriter struct {
	conn     *sqlite.Conn
	table    string
	writable map[string]bool
	stmts    map[string]*sqlite.Stmt
	rows     int64
	// rowDone, if set, is called after each row is inserted.
	rowDone func()
}

func newTableWriter(conn *sqlite.Conn, table string) (*tableWriter, error) {
	if _, err := tableKind(conn, table); err != nil {
		return nil, err
	}
	_, writable, err := columns(conn, table)
	if err != nil {
		return nil, sqlErr(err)
	}
	if err := exec(conn, "BEGIN IMMEDIATE"); err != nil {
		return nil, sqlErr(err)
	}
	return &tableWriter{conn: conn, table: table, writable: writable, stmts: map[string]*sqlite.Stmt{}}, nil
}

func (t *tableWriter) stmt(cols []string) (*sqlite.Stmt, error) {
	key := strings.Join(cols, "\x00")
	if st, ok := t.stmts[key]; ok {
		return st, nil
	}
	if len(t.stmts) >= 64 {
		return nil, badRequest("invalid_argument", "too many different column sets")
	}
	quoted := make([]string, len(cols))
	marks := make([]string, len(cols))
	for i, c := range cols {
		if !t.writable[c] {
			return nil, badRequest("unknown_column", fmt.Sprintf("table %q has no writable column %q", t.table, c))
		}
		quoted[i] = quoteIdent(c)
		marks[i] = "?"
	}
	sql := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", quoteIdent(t.table), strings.Join(quoted, ","), strings.Join(marks, ","))
	if len(cols) == 0 {
		sql = fmt.Sprintf("INSERT INTO %s DEFAULT VALUES", quoteIdent(t.table))
	}
	st, err := t.conn.Prepare(sql)
	if err != nil {
		return nil, sqlErr(err)
	}
	t.stmts[key] = st
	return st, nil
}

// insert runs st once with its bindings set, then resets it.
func (t *tableWriter) insert(st *sqlite.Stmt) error {
	_, err := st.Step()
	st.Reset()
	st.ClearBindings()
	if err != nil {
		return fmt.Errorf("row %d: %w", t.rows+1, sqlErr(err))
	}
	t.rows++
	if t.rowDone != nil {
		t.rowDone()
	}
	return nil
}

func (t *tableWriter) commit() error {
	if err := exec(t.conn, "COMMIT"); err != nil {
		return sqlErr(err)
	}
	return nil
}

// close finalizes nothing (Prepare'd statements are cached by the
// connection) and rolls back if commit was not reached.
func (t *tableWriter) close() {
	if !t.conn.AutocommitEnabled() {
		_ = exec(t.conn, "ROLLBACK")
	}
}

// importTable opens the upload and a transaction on the path's table,
// runs load over them, then commits and reports the rows inserted.
func (s *Server) importTable(w http.ResponseWriter, r *http.Request, load func(io.Reader, *tableWriter) error) error {
	return s.withImport(w, r, func(_ *db, body io.Reader, conn *sqlite.Conn) error {
		tw, err := newTableWriter(conn, r.PathValue("table"))
		if err != nil {
			return err
		}
		defer tw.close()
		rows := &recordLimit{r: body, max: s.cfg.MaxImportStatementBytes}
		tw.rowDone = rows.rowDone
		if err := load(rows, tw); err != nil {
			return err
		}
		if err := tw.commit(); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, importResult{
			Message:          fmt.Sprintf("Imported %d out of %d records successfully. 0 records failed.", tw.rows, tw.rows),
			FailedStatements: []string{}, Rows: tw.rows,
		})
		return nil
	})
}

// handleImportCSV loads CSV rows (a header row names the columns; an
// empty field is NULL) into an existing table, all or nothing. The CSV is
// the body, a multipart file, or StarbaseDB's JSON {"data": "<csv>",
// "columnMapping": {...}}.
func (s *Server) handleImportCSV(w http.ResponseWriter, r *http.Request) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return s.importTable(w, r, func(body io.Reader, tw *tableWriter) error {
		if ct != typeJSON {
			return loadCSV(body, tw, nil)
		}
		var in struct {
			Data          *string           `json:"data"`
			ColumnMapping map[string]string `json:"columnMapping"`
		}
		dec := json.NewDecoder(&capReader{r: body, left: s.cfg.MaxBodyBytes})
		if err := dec.Decode(&in); err != nil {
			return jsonBodyError(err)
		}
		if in.Data == nil {
			return badRequest("bad_json", `want {"data": "<csv text>", "columnMapping": {...}}`)
		}
		return loadCSV(strings.NewReader(*in.Data), tw, in.ColumnMapping)
	})
}

// mapColumn renames a column by a StarbaseDB columnMapping (source name
// to table column).
func mapColumn(mapping map[string]string, name string) string {
	if to := mapping[name]; to != "" {
		return to
	}
	return name
}

func loadCSV(body io.Reader, tw *tableWriter, mapping map[string]string) error {
	cr := csv.NewReader(body)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return badRequest("bad_csv", "empty CSV: a header row is required")
	}
	if err != nil {
		return csvError(err)
	}
	cols := append([]string(nil), header...)
	for i := range cols {
		cols[i] = mapColumn(mapping, strings.TrimSpace(strings.TrimPrefix(cols[i], "\ufeff")))
	}
	st, err := tw.stmt(cols)
	if err != nil {
		return err
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return csvError(err)
		}
		for i, v := range rec {
			if v == "" {
				st.BindNull(i + 1)
			} else {
				st.BindText(i+1, v)
			}
		}
		if err := tw.insert(st); err != nil {
			return err
		}
	}
	return nil
}

// capReader fails a read past left bytes with sluice.ErrTooLarge.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("%w: over the %s limit for a JSON document held in memory (send columnMapping before data, or a bare array)", sluice.ErrTooLarge, "maxBodyBytes")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return badRequest("bad_csv", pe.Error())
	}
	return bodyError(err)
}

// handleImportJSON loads a JSON array of row objects, or StarbaseDB's
// {"data": [...], "columnMapping": {...}}, into an existing table, all
// or nothing. Nested arrays and objects are stored as JSON text.
func (s *Server) handleImportJSON(w http.ResponseWriter, r *http.Request) error {
	return s.importTable(w, r, func(body io.Reader, tw *tableWriter) error {
		return loadJSON(body, tw, s.cfg.MaxBodyBytes)
	})
}

// loadJSON streams the rows. In the object form, a columnMapping that
// follows data (as JSON.stringify({data, columnMapping}) writes it)
// means data must be held until the mapping is known: up to maxHeld
// bytes of it.
func loadJSON(body io.Reader, tw *tableWriter, maxHeld int64) error {
	cr := &capReader{r: body, left: math.MaxInt64}
	dec := json.NewDecoder(cr)
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return jsonBodyError(err)
	}
	if tok == json.Delim('[') {
		return loadRows(dec, tw, nil)
	}
	if tok != json.Delim('{') {
		return badRequest("bad_json", wantRows)
	}
	var mapping map[string]string
	var held json.RawMessage
	seen := false
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return jsonBodyError(err)
		}
		switch key {
		case "columnMapping":
			if err := dec.Decode(&mapping); err != nil {
				return badRequest("bad_json", "columnMapping must map column names to column names")
			}
		case "data":
			seen = true
			if mapping != nil {
				if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
					return badRequest("bad_json", wantRows)
				}
				if err := loadRows(dec, tw, mapping); err != nil {
					return err
				}
				continue
			}
			cr.left = maxHeld
			if err := dec.Decode(&held); err != nil {
				return jsonBodyError(err)
			}
			cr.left = math.MaxInt64
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return jsonBodyError(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return jsonBodyError(err)
	}
	if !seen {
		return badRequest("bad_json", wantRows)
	}
	if held == nil {
		return nil
	}
	hd := json.NewDecoder(bytes.NewReader(held))
	hd.UseNumber()
	if tok, err := hd.Token(); err != nil || tok != json.Delim('[') {
		return badRequest("bad_json", wantRows)
	}
	return loadRows(hd, tw, mapping)
}

const wantRows = `want a JSON array of row objects, or {"data": [...], "columnMapping": {...}}`

// loadRows inserts the row objects of an array whose "[" dec has read,
// through its "]".
func loadRows(dec *json.Decoder, tw *tableWriter, mapping map[string]string) error {
	for dec.More() {
		var row map[string]json.RawMessage
		if err := dec.Decode(&row); err != nil {
			return jsonBodyError(err)
		}
		cols := make([]string, 0, len(row))
		for k := range row {
			cols = append(cols, k)
		}
		sort.Strings(cols)
		mapped := make([]string, len(cols))
		for i, c := range cols {
			mapped[i] = mapColumn(mapping, c)
		}
		st, err := tw.stmt(mapped)
		if err != nil {
			return err
		}
		for i, c := range cols {
			if err := bindJSON(st, i+1, row[c]); err != nil {
				return badRequest("bad_json", fmt.Sprintf("row %d, column %q: %v", tw.rows+1, c, err))
			}
		}
		if err := tw.insert(st); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return jsonBodyError(err)
	}
	return nil
}

func jsonBodyError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se), errors.As(err, &te), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("bad_json", "invalid JSON: "+err.Error())
	}
	return bodyError(err)
}

func bindJSON(st *sqlite.Stmt, i int, raw json.RawMessage) error {
	raw = json.RawMessage(strings.TrimSpace(string(raw)))
	if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[') {
		st.BindText(i, string(raw))
		return nil
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	c, err := bindValue(v)
	if err != nil {
		return err
	}
	bindOne(st, i, c)
	return nil
}
