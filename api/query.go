package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"zombiezen.com/go/sqlite"
)

// queryRequest is the body of POST /query and /query/raw: either one
// statement (SQL with Params) or a Transaction of them.
type queryRequest struct {
	SQL         string
	Params      params
	Transaction []queryItem
}

type queryItem struct {
	SQL    string
	Params params
}

// params are a statement's bind values: positional (a JSON array) or
// named (a JSON object, keys with or without the :, @ or $ prefix).
type params struct {
	Positional []any
	Named      map[string]any
}

func (p params) empty() bool { return p.Positional == nil && p.Named == nil }

type wireItem struct {
	SQL    *string         `json:"sql"`
	Params json.RawMessage `json:"params"`
}

type wireQuery struct {
	SQL         *string         `json:"sql"`
	Params      json.RawMessage `json:"params"`
	Transaction []wireItem      `json:"transaction"`
}

// maxTransaction bounds the statements in one transaction request.
const maxTransaction = 1000

// decodeQuery parses and validates a query request body. Every failure
// is a 400 with code bad_json or invalid_query (413 when the body is over
// the limit, which the caller's MaxBytesReader reports).
func decodeQuery(r io.Reader) (queryRequest, error) {
	var w wireQuery
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return queryRequest{}, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return queryRequest{}, badRequest("bad_json", "unexpected data after the JSON object")
	}
	var q queryRequest
	switch {
	case w.Transaction != nil && (w.SQL != nil || w.Params != nil):
		return q, badRequest("invalid_query", "give either sql (with params) or transaction, not both")
	case w.Transaction != nil:
		if len(w.Transaction) == 0 {
			return q, badRequest("invalid_query", "transaction is empty")
		}
		if len(w.Transaction) > maxTransaction {
			return q, badRequest("invalid_query", fmt.Sprintf("transaction has over %d statements", maxTransaction))
		}
		for i, it := range w.Transaction {
			if it.SQL == nil || strings.TrimSpace(*it.SQL) == "" {
				return q, badRequest("invalid_query", fmt.Sprintf("transaction[%d]: sql is missing", i))
			}
			p, err := decodeParams(it.Params)
			if err != nil {
				return q, badRequest("invalid_params", fmt.Sprintf("transaction[%d]: %v", i, err))
			}
			q.Transaction = append(q.Transaction, queryItem{SQL: *it.SQL, Params: p})
		}
	default:
		if w.SQL == nil || strings.TrimSpace(*w.SQL) == "" {
			return q, badRequest("invalid_query", "sql is missing")
		}
		p, err := decodeParams(w.Params)
		if err != nil {
			return q, badRequest("invalid_params", err.Error())
		}
		q.SQL, q.Params = *w.SQL, p
	}
	return q, nil
}

// jsonError turns a decoding error into a 400 (or keeps a 413).
func jsonError(err error) error {
	// A body that could not be read (too large, too slow) is not bad
	// JSON: those errors keep their own status.
	var mbe *http.MaxBytesError
	var ae *Error
	if errors.As(err, &mbe) || errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, io.EOF) {
		return badRequest("bad_json", "empty request body")
	}
	return badRequest("bad_json", "invalid JSON body: "+err.Error())
}

func decodeParams(raw json.RawMessage) (params, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return params{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return params{}, fmt.Errorf("params: %v", err)
	}
	switch v := v.(type) {
	case []any:
		for i, x := range v {
			c, err := bindValue(x)
			if err != nil {
				return params{}, fmt.Errorf("params[%d]: %v", i, err)
			}
			v[i] = c
		}
		if v == nil {
			v = []any{}
		}
		return params{Positional: v}, nil
	case map[string]any:
		for k, x := range v {
			c, err := bindValue(x)
			if err != nil {
				return params{}, fmt.Errorf("params.%s: %v", k, err)
			}
			v[k] = c
		}
		return params{Named: v}, nil
	}
	return params{}, errors.New("params must be an array or an object")
}

// bindValue converts a decoded JSON value into what bind accepts:
// nil, int64, float64, string or bool.
func bindValue(x any) (any, error) {
	switch x := x.(type) {
	case nil, string, bool:
		return x, nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("bad number %s", x)
		}
		return f, nil
	}
	return nil, errors.New("values must be null, a number, a string or a boolean")
}

// bind binds p to stmt's parameters, checking that each has a value.
func bind(stmt *sqlite.Stmt, p params) error {
	n := stmt.BindParamCount()
	if p.Named == nil {
		if len(p.Positional) != n {
			return badRequest("invalid_params", fmt.Sprintf("the statement has %d parameters, %d given", n, len(p.Positional)))
		}
		for i, v := range p.Positional {
			bindOne(stmt, i+1, v)
		}
		return nil
	}
	for i := 1; i <= n; i++ {
		name := stmt.BindParamName(i)
		if name == "" || name[0] == '?' {
			return badRequest("invalid_params", fmt.Sprintf("parameter %d is positional: give params as an array", i))
		}
		v, ok := p.Named[name[1:]]
		if !ok {
			v, ok = p.Named[name]
		}
		if !ok {
			return badRequest("invalid_params", fmt.Sprintf("no value for parameter %s", name))
		}
		bindOne(stmt, i, v)
	}
	return nil
}

func bindOne(stmt *sqlite.Stmt, i int, v any) {
	switch v := v.(type) {
	case nil:
		stmt.BindNull(i)
	case int64:
		stmt.BindInt64(i, v)
	case float64:
		stmt.BindFloat(i, v)
	case string:
		stmt.BindText(i, v)
	case bool:
		stmt.BindBool(i, v)
	}
}

// runSQL runs every statement in sql (params only with a single
// statement) and returns the encoded result of the last statement that
// has columns, or of the last statement.
func (s *Server) runSQL(conn *sqlite.Conn, sql string, p params, raw bool, budget *queryBudget) ([]byte, error) {
	var last []byte
	lastHasCols := false
	first := true
	for strings.TrimSpace(sql) != "" {
		stmt, trailing, err := conn.PrepareTransient(sql)
		if err != nil {
			return nil, sqlErr(err)
		}
		rest := sql[len(sql)-trailing:]
		if stmt == nil {
			sql = rest
			continue
		}
		if first && !p.empty() && hasStatement(conn, rest) {
			stmt.Finalize()
			return nil, badRequest("invalid_params", "params need a single statement per sql")
		}
		first = false
		if err := bind(stmt, p); err != nil {
			stmt.Finalize()
			return nil, err
		}
		hasCols := stmt.ColumnCount() > 0
		out, err := encodeRows(conn, stmt, raw, budget)
		stmt.Finalize()
		if err != nil {
			return nil, err
		}
		if hasCols || !lastHasCols {
			last, lastHasCols = out, hasCols
		}
		sql = rest
	}
	if last == nil {
		if raw {
			return []byte(`{"columns":[],"rows":[],"meta":{"rows_read":0,"rows_written":0}}`), nil
		}
		return []byte("[]"), nil
	}
	return last, nil
}

// hasStatement reports whether text holds another statement.
func hasStatement(conn *sqlite.Conn, text string) bool {
	if strings.TrimSpace(text) == "" {
		return false
	}
	stmt, _, err := conn.PrepareTransient(text)
	if err != nil {
		return true // let the caller's error be about params
	}
	if stmt == nil {
		return false
	}
	stmt.Finalize()
	return true
}

// encodeRows steps stmt to the end, encoding its rows as an array of
// objects, or (raw) as {columns, rows, meta}. budget bounds the bytes of
// the whole response; a text or blob value is charged before it is
// copied out of SQLite, so one over the budget is never materialised.
func encodeRows(conn *sqlite.Conn, stmt *sqlite.Stmt, raw bool, budget *queryBudget) ([]byte, error) {
	before := totalChanges(conn)
	ncol := stmt.ColumnCount()
	names := make([]string, ncol)
	for i := range names {
		names[i] = stmt.ColumnName(i)
	}
	var b []byte
	if raw {
		b = append(b, `{"columns":[`...)
		for i, n := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, n)
		}
		b = append(b, `],"rows":[`...)
	} else {
		b = append(b, '[')
	}
	var rows int64
	for {
		more, err := stmt.Step()
		if err != nil {
			return nil, sqlErr(err)
		}
		if !more {
			break
		}
		if rows > 0 {
			b = append(b, ',')
		}
		mark := len(b)
		var charged int64
		if raw {
			b = append(b, '[')
		} else {
			b = append(b, '{')
		}
		for i := 0; i < ncol; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			if !raw {
				b = appendJSONString(b, names[i])
				b = append(b, ':')
			}
			if t := stmt.ColumnType(i); t == sqlite.TypeText || t == sqlite.TypeBlob {
				// Encoded, a value takes at least its own length.
				n := int64(stmt.ColumnLen(i))
				if err := budget.take(n); err != nil {
					return nil, err
				}
				charged += n
			}
			b = appendValue(b, stmt, i)
		}
		if raw {
			b = append(b, ']')
		} else {
			b = append(b, '}')
		}
		rows++
		if err := budget.take(int64(len(b)-mark) - charged); err != nil {
			return nil, err
		}
	}
	if raw {
		written := totalChanges(conn) - before
		if written < 0 {
			written = 0
		}
		b = append(b, `],"meta":{"rows_read":`...)
		b = strconv.AppendInt(b, rows, 10)
		b = append(b, `,"rows_written":`...)
		b = strconv.AppendInt(b, written, 10)
		b = append(b, "}}"...)
	} else {
		b = append(b, ']')
	}
	return b, nil
}

func totalChanges(conn *sqlite.Conn) int64 {
	stmt, _, err := conn.PrepareTransient("SELECT total_changes()")
	if err != nil {
		return 0
	}
	defer stmt.Finalize()
	if ok, err := stmt.Step(); err != nil || !ok {
		return 0
	}
	return stmt.ColumnInt64(0)
}

// appendValue encodes column i as JSON: integers and reals as numbers
// (integers exactly, all 64 bits), text as a string, blobs as base64,
// infinities as the strings "Infinity" and "-Infinity".
func appendValue(b []byte, stmt *sqlite.Stmt, i int) []byte {
	switch stmt.ColumnType(i) {
	case sqlite.TypeInteger:
		return strconv.AppendInt(b, stmt.ColumnInt64(i), 10)
	case sqlite.TypeFloat:
		return appendFloat(b, stmt.ColumnFloat(i))
	case sqlite.TypeText:
		return appendJSONString(b, stmt.ColumnText(i))
	case sqlite.TypeBlob:
		buf := make([]byte, stmt.ColumnLen(i))
		stmt.ColumnBytes(i, buf)
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, buf)
		return append(b, '"')
	}
	return append(b, "null"...)
}

func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	case math.IsNaN(f):
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request) error {
	return s.query(w, r, false)
}

func (s *Server) handleQueryRaw(w http.ResponseWriter, r *http.Request) error {
	return s.query(w, r, true)
}

// query serves /query and /query/raw. The response is StarbaseDB's:
// {"result": rows} for one statement, {"result": [rows, ...]} for a
// transaction.
func (s *Server) query(w http.ResponseWriter, r *http.Request, raw bool) error {
	d, err := s.database(r)
	if err != nil {
		return err
	}
	q, err := decodeQuery(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	client := false
	if s.auth.enabled() {
		role, _ := s.auth.role(r)
		client = role < RoleAdmin
	}
	// No value larger than a whole response may be built: SQLite fails
	// such a statement ("string or blob too big") before allocating it.
	conn, err := d.take(ctx, connUse{client: client, maxValue: s.cfg.MaxResultBytes})
	if err != nil {
		return err
	}
	defer d.put(conn)
	budget := newQueryBudget(s.cfg.MaxResultBytes, s.queryMem)
	defer budget.close()

	var results [][]byte
	if q.Transaction == nil {
		res, err := s.runSQL(conn, q.SQL, q.Params, raw, budget)
		if err != nil {
			return timeoutOr(ctx, err)
		}
		results = append(results, res)
	} else {
		if err := exec(conn, "BEGIN IMMEDIATE"); err != nil {
			return timeoutOr(ctx, sqlErr(err))
		}
		for i, it := range q.Transaction {
			res, err := s.runSQL(conn, it.SQL, it.Params, raw, budget)
			if err != nil {
				_ = exec(conn, "ROLLBACK")
				e := classify(timeoutOr(ctx, err))
				return &Error{Status: e.Status, Code: e.Code, Message: fmt.Sprintf("transaction[%d]: %s", i, e.Message)}
			}
			results = append(results, res)
		}
		if err := exec(conn, "COMMIT"); err != nil {
			return timeoutOr(ctx, sqlErr(err))
		}
	}
	// Written piece by piece: the response is not copied once more.
	w.Header().Set("Content-Type", "application/json")
	if q.Transaction == nil {
		w.Write([]byte(`{"result":`))
		w.Write(results[0])
		w.Write([]byte("}\n"))
		return nil
	}
	w.Write([]byte(`{"result":[`))
	for i, res := range results {
		if i > 0 {
			w.Write([]byte{','})
		}
		w.Write(res)
	}
	w.Write([]byte("]}\n"))
	return nil
}

// timeoutOr reports a query interrupted by its deadline as a timeout.
func timeoutOr(ctx context.Context, err error) error {
	if ctx.Err() == context.DeadlineExceeded {
		return apiErr(http.StatusServiceUnavailable, "timeout", "query timed out: "+err.Error())
	}
	return err
}
