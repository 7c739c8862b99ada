package dump

import (
	"fmt"
	"math"
	"strings"

	"github.com/sluice-dev/sluice"
	"zombiezen.com/go/sqlite"
)

// stepKind is what one step of a dump does. A dump is a fixed list of
// steps computed at Open; a Cursor names a step and, inside a table step,
// the last key written.
type stepKind uint8

const (
	stepBegin  stepKind = iota // the format's opening (SQL header)
	stepSchema                 // one schema statement
	stepTable                  // a table: its schema statement, then its rows
	stepEnd                    // the format's closing (COMMIT)
)

type step struct {
	kind stepKind
	stmt string     // schema statement without ";\n" ("" for none)
	t    *tableSpec // stepTable only
}

// tableSpec is everything the reader and the formatter need for a table.
type tableSpec struct {
	meta  tableMeta
	info  TableInfo
	rows  bool   // read and write the rows (false in schema-only mode)
	paged bool   // keyset pagination is possible (else one scan, no mid-table cursor)
	nkey  int    // leading key columns in each result row (not passed to the formatter)
	first string // from the start: SELECT key..., cols... ORDER BY key
	next  string // after a key: ... WHERE (key) > (?...) ORDER BY key

	// Large-value variants (rowid tables of UTF-8 databases): each value
	// column is selected as (value or NULL if large, storage class if large).
	large     bool
	nextLarge string
	blobCols  []string // column name per value column for blob I/O ("" for the rowid)

	// Bounded variants for split reading (split.go): rowid tables only,
	// whose key is one integer, so that a range of it can be cut by
	// arithmetic.
	split       bool
	minKey      int64 // the smallest and largest rowid in the snapshot
	maxKey      int64
	nextTo      string // ... WHERE key > ?1 AND key <= ?2
	nextLargeTo string
}

// largeValue is the size above which a TEXT or BLOB value is read with
// incremental blob I/O once a table's rows turn out to be large.
const largeValue = 32 << 10

type schemaEntry struct {
	typ, name, tblName, sql string
}

// buildPlan reads the schema inside the snapshot and lays out the steps
// in sqlite3 .dump's order: tables by rowid of sqlite_schema with
// sqlite_sequence last, then indexes, triggers and views by rowid.
func (s *Source) buildPlan() error {
	tables, err := s.schemaEntries(`SELECT type, name, tbl_name, sql FROM sqlite_schema
		WHERE type='table' AND sql NOT NULL ORDER BY tbl_name='sqlite_sequence', rowid`)
	if err != nil {
		return fmt.Errorf("read schema: %w", explain(err))
	}
	others, err := s.schemaEntries(`SELECT type, name, tbl_name, sql FROM sqlite_schema
		WHERE sql NOT NULL AND type IN ('index','trigger','view') ORDER BY rowid`)
	if err != nil {
		return fmt.Errorf("read schema: %w", explain(err))
	}
	kinds, err := s.tableKinds()
	if err != nil {
		return fmt.Errorf("read table list: %w", explain(err))
	}

	known := map[string]bool{}
	var virtuals []string
	for _, e := range tables {
		known[e.name] = true
		if kinds[e.name] == "virtual" {
			virtuals = append(virtuals, e.name)
		}
	}
	for _, e := range others {
		if e.typ == "view" {
			known[e.name] = true
		}
	}
	include := map[string]bool{}
	for _, n := range s.opts.Tables {
		if !known[n] {
			return fmt.Errorf("table %q: %w", n, sluice.ErrNotFound)
		}
		include[n] = true
	}
	exclude := map[string]bool{}
	for _, n := range s.opts.Exclude {
		if !known[n] {
			return fmt.Errorf("excluded table %q: %w", n, sluice.ErrNotFound)
		}
		exclude[n] = true
	}
	// owner maps a shadow table to its virtual table, so that selecting
	// an FTS5 table brings its content along.
	owner := func(name string) string {
		best := ""
		for _, v := range virtuals {
			if strings.HasPrefix(name, v+"_") && len(v) > len(best) {
				best = v
			}
		}
		return best
	}
	selected := func(name string) bool {
		if exclude[name] {
			return false
		}
		if len(include) == 0 || include[name] {
			return true
		}
		if kinds[name] == "shadow" {
			if o := owner(name); o != "" && include[o] && !exclude[o] {
				return true
			}
		}
		return false
	}

	sqlFormat := s.opts.Format == sluice.FormatSQL
	s.steps = append(s.steps, step{kind: stepBegin})
	writable := false
	for _, e := range tables {
		isSeq := e.name == "sqlite_sequence"
		// sqlite3 .dump also copies sqlite_stat2..4, but they exist only
		// in builds with SQLITE_ENABLE_STAT4 (which the Go driver has and
		// Debian's sqlite3 lacks), and "ANALYZE sqlite_schema" cannot
		// create them elsewhere; they are optimizer statistics, so sluice
		// writes sqlite_stat1 only.
		isStat := e.name == "sqlite_stat1"
		if strings.HasPrefix(e.name, "sqlite_") && !isSeq && !isStat {
			continue
		}
		if isSeq || isStat {
			// Always travel with a SQL dump (a subset still needs its
			// AUTOINCREMENT counters), unless excluded by name.
			if exclude[e.name] || !sqlFormat || s.opts.SchemaOnly {
				continue // internal tables: data for SQL restores only
			}
		} else if !selected(e.name) {
			continue
		}
		virtual := kinds[e.name] == "virtual"
		if !sqlFormat {
			// csv/json carry user data: a virtual table's rows are read
			// through the table itself, its shadow tables are skipped.
			if kinds[e.name] == "shadow" {
				continue
			}
		} else if virtual {
			if s.opts.DataOnly {
				continue // its rows travel in its shadow tables
			}
			if !writable {
				s.steps = append(s.steps, step{kind: stepSchema, stmt: "PRAGMA writable_schema=ON"})
				writable = true
			}
			s.steps = append(s.steps, step{kind: stepSchema, stmt: "INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table'," +
				quoteLiteral(e.name) + "," + quoteLiteral(e.name) + ",0," + quoteLiteral(e.sql) + ")"})
			continue
		}
		t, err := s.tableSpec(e.name, kinds)
		if err != nil {
			return err
		}
		seqDelete := "DELETE FROM sqlite_sequence"
		if isSeq && (len(include) > 0 || len(exclude) > 0) {
			// A subset carries only its own tables' counters, and only
			// when it has some: a dump whose tables have none must not
			// touch sqlite_sequence, which a fresh database lacks.
			var ok bool
			if seqDelete, ok, err = s.narrowSequence(t, s.plan.Tables); err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		t.rows = !s.opts.SchemaOnly
		t.meta.Index = len(s.plan.Tables)
		st := step{kind: stepTable, t: t}
		if sqlFormat && !s.opts.DataOnly {
			switch {
			case isSeq:
				st.stmt = seqDelete
			case isStat:
				st.stmt = "ANALYZE sqlite_schema"
			default:
				st.stmt = createStatement(e.sql)
			}
		} else if !sqlFormat {
			st.stmt = e.sql
		}
		s.steps = append(s.steps, st)
		s.plan.Tables = append(s.plan.Tables, t.info)
	}
	if sqlFormat && !s.opts.DataOnly {
		for _, e := range others {
			if !selected(e.tblName) {
				continue
			}
			stmt := e.sql
			if endsInComment(stmt) == 2 {
				// The ';' must not land in the comment. sqlite3 .dump adds
				// this newline whenever the text holds "--" anywhere, which
				// adds a newline to the restored schema; sluice adds it only
				// when needed, so the schema text round-trips exactly.
				stmt += "\n"
			}
			s.steps = append(s.steps, step{kind: stepSchema, stmt: stmt})
		}
	}
	if writable {
		s.steps = append(s.steps, step{kind: stepSchema, stmt: "PRAGMA writable_schema=OFF"})
	}
	s.steps = append(s.steps, step{kind: stepEnd})

	pageCount, err := s.queryText("PRAGMA page_count")
	if err != nil {
		return fmt.Errorf("read page count: %w", explain(err))
	}
	pageSize, err := s.queryText("PRAGMA page_size")
	if err != nil {
		return fmt.Errorf("read page size: %w", explain(err))
	}
	var pc, ps int64
	fmt.Sscan(pageCount, &pc)
	fmt.Sscan(pageSize, &ps)
	s.plan.EstimatedBytes = pc * ps
	s.plan.PageSize, s.plan.PageCount = ps, pc
	return nil
}

// createStatement returns a CREATE TABLE statement as sqlite3 .dump
// prints it (printSchemaLine): a comment left open at the end is closed,
// and a table whose name is quoted gets IF NOT EXISTS (which is what lets
// FTS5 shadow tables, created again by the virtual table, reload).
func createStatement(sql string) string {
	if strings.Contains(sql, "/*") || strings.Contains(sql, "--") {
		switch endsInComment(sql) {
		case 1:
			sql += "*/"
		case 2:
			sql += "\n"
		}
	}
	if strings.HasPrefix(sql, "CREATE TABLE ") && len(sql) > 13 && (sql[13] == '\'' || sql[13] == '"') {
		return "CREATE TABLE IF NOT EXISTS " + sql[13:]
	}
	return sql
}

func (s *Source) schemaEntries(query string) ([]schemaEntry, error) {
	st, _, err := s.conn.PrepareTransient(query)
	if err != nil {
		return nil, err
	}
	defer st.Finalize()
	var out []schemaEntry
	for {
		ok, err := st.Step()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, schemaEntry{st.ColumnText(0), st.ColumnText(1), st.ColumnText(2), st.ColumnText(3)})
	}
}

// tableKinds maps each table of the main schema to its kind as PRAGMA
// table_list reports it: table, view, virtual or shadow.
func (s *Source) tableKinds() (map[string]string, error) {
	st, _, err := s.conn.PrepareTransient("SELECT name, type FROM pragma_table_list WHERE schema='main'")
	if err != nil {
		return nil, err
	}
	defer st.Finalize()
	m := map[string]string{}
	for {
		ok, err := st.Step()
		if err != nil {
			return nil, err
		}
		if !ok {
			return m, nil
		}
		m[st.ColumnText(0)] = st.ColumnText(1)
	}
}

type columnInfo struct {
	name, typ string
	pk        int
	hidden    int // 0 normal, 1 hidden (virtual), 2/3 generated
}

// tableSpec works out a table's columns, key and queries.
// narrowSequence restricts the sqlite_sequence step t to the rows of the
// tables a subset dump carries. It returns the statement that clears
// those rows before they are loaded, and false when there are none.
func (s *Source) narrowSequence(t *tableSpec, tables []TableInfo) (string, bool, error) {
	names := make([]string, 0, len(tables))
	for _, ti := range tables {
		names = append(names, quoteLiteral(ti.Name))
	}
	if len(names) == 0 {
		return "", false, nil
	}
	in := " WHERE name IN (" + strings.Join(names, ",") + ")"
	n, err := s.queryText("SELECT count(*) FROM sqlite_sequence" + in)
	if err != nil {
		return "", false, fmt.Errorf("read sqlite_sequence: %w", explain(err))
	}
	if n == "0" {
		return "", false, nil
	}
	cols := make([]string, len(t.meta.Columns))
	for i, c := range t.meta.Columns {
		cols[i] = quoteIdent(c)
	}
	// A few rows: one unpaged scan.
	t.first = "SELECT " + strings.Join(cols, ",") + " FROM sqlite_sequence" + in
	t.paged, t.nkey, t.next, t.large, t.nextLarge = false, 0, "", false, ""
	return "DELETE FROM sqlite_sequence" + in, true, nil
}

func (s *Source) tableSpec(name string, kinds map[string]string) (*tableSpec, error) {
	cols, err := s.columns(name)
	if err != nil {
		return nil, fmt.Errorf("table %q: columns: %w", name, explain(err))
	}
	wr, err := s.queryText("SELECT wr FROM pragma_table_list WHERE schema='main' AND name=?1", name)
	if err != nil {
		return nil, fmt.Errorf("table %q: %w", name, explain(err))
	}
	t := &tableSpec{}
	t.meta.Name = name
	t.info = TableInfo{Name: name, WithoutRowid: wr == "1", Virtual: kinds[name] == "virtual"}

	var visible []columnInfo // what .dump's PRAGMA table_info lists
	nPK, isIPK := 0, false
	for _, c := range cols {
		if c.hidden != 0 {
			continue
		}
		visible = append(visible, c)
		if c.pk > 0 {
			nPK++
			isIPK = nPK == 1 && strings.EqualFold(c.typ, "INTEGER")
		}
	}

	// The name by which the rowid is reachable: the first of rowid,
	// _rowid_ and oid that no column (generated ones included) shadows.
	rowidName := ""
	if !t.info.WithoutRowid {
		for _, cand := range []string{"rowid", "_rowid_", "oid"} {
			used := false
			for _, c := range cols {
				if strings.EqualFold(c.name, cand) {
					used = true
					break
				}
			}
			if !used {
				rowidName = cand
				break
			}
		}
	}

	keep := s.opts.PreserveRowids && rowidName != "" && !t.info.Virtual
	if keep && isIPK {
		// An INTEGER PRIMARY KEY is the rowid unless a "pk" index backs
		// it (INTEGER PRIMARY KEY DESC); then the rowid is separate.
		pkIdx, err := s.queryText("SELECT 1 FROM pragma_index_list(?1) WHERE origin='pk'", name)
		if err != nil {
			return nil, fmt.Errorf("table %q: index list: %w", name, explain(err))
		}
		keep = pkIdx == "1"
	}
	if keep {
		t.meta.Columns = append(t.meta.Columns, rowidName)
		t.meta.HasRowid = true
		t.meta.ExplicitColumns = true
	}
	var sel []string
	if keep {
		sel = append(sel, rowidName)
	}
	for _, c := range visible {
		t.meta.Columns = append(t.meta.Columns, c.name)
		sel = append(sel, quoteIdent(c.name))
	}

	var key []string
	switch {
	case t.info.WithoutRowid:
		pk := make([]string, 0, nPK)
		for i := 1; ; i++ {
			found := false
			for _, c := range cols {
				if c.pk == i {
					pk = append(pk, quoteIdent(c.name))
					found = true
				}
			}
			if !found {
				break
			}
		}
		key = pk
	case rowidName != "":
		key = []string{rowidName}
	default:
		// Every rowid alias is shadowed by a column. An INTEGER PRIMARY
		// KEY column is the rowid itself; otherwise the rowid is out of
		// reach and the table is read in one scan (no mid-table cursor).
		if isIPK {
			for _, c := range visible {
				if c.pk == 1 {
					key = []string{quoteIdent(c.name)}
				}
			}
		}
	}
	from := " FROM " + quoteIdent(name)
	cols2 := strings.Join(sel, ",")
	if len(sel) == 0 {
		cols2 = "NULL" // never happens for real tables; keeps the SQL valid
	}
	if len(key) == 0 {
		t.first = "SELECT " + cols2 + from
		return t, nil
	}
	t.paged = true
	t.nkey = len(key)
	k := strings.Join(key, ",")
	t.first = "SELECT " + k + "," + cols2 + from + " ORDER BY " + k
	params := make([]string, len(key))
	for i := range key {
		params[i] = fmt.Sprintf("?%d", i+1)
	}
	cond := key[0] + " > " + params[0]
	if len(key) > 1 {
		cond = "(" + k + ") > (" + strings.Join(params, ",") + ")"
	}
	order := " ORDER BY " + k
	upTo := "" // the split spans' upper bound, for a rowid key
	if !t.info.WithoutRowid {
		upTo = " AND " + key[0] + " <= ?2"
	}
	t.next = "SELECT " + k + "," + cols2 + from + " WHERE " + cond + order
	t.nextTo = "SELECT " + k + "," + cols2 + from + " WHERE " + cond + upTo + order
	if !t.info.WithoutRowid && !t.info.Virtual && !s.utf16 && rowidName != "" {
		// The large-value variant: a value longer than largeValue bytes
		// comes back as NULL plus its storage class, and the reader
		// fetches it with incremental blob I/O instead. SQLite would
		// otherwise assemble each large value in a fresh allocation,
		// which the Go driver's allocator maps and unmaps every time.
		lsel := make([]string, 0, 2*len(sel))
		for i, c := range sel {
			if keep && i == 0 {
				lsel = append(lsel, c, "NULL")
				continue
			}
			lsel = append(lsel,
				fmt.Sprintf("CASE WHEN octet_length(%s) > %d THEN NULL ELSE %s END", c, largeValue, c),
				fmt.Sprintf("CASE WHEN octet_length(%s) > %d THEN typeof(%s) END", c, largeValue, c))
		}
		lcols := strings.Join(lsel, ",")
		t.large = true
		t.nextLarge = "SELECT " + k + "," + lcols + from + " WHERE " + cond + order
		t.nextLargeTo = "SELECT " + k + "," + lcols + from + " WHERE " + cond + upTo + order
		t.blobCols = make([]string, len(t.meta.Columns))
		for i, c := range t.meta.Columns {
			if !(keep && i == 0) {
				t.blobCols[i] = c
			}
		}
	}
	if !t.info.WithoutRowid {
		// Only an estimate for a virtual table, whose module may refuse
		// the query; an ordinary table that fails it would fail the dump.
		if err := s.rowidRange(t, key[0], from); err != nil && !t.info.Virtual {
			return nil, fmt.Errorf("table %q: rowid range: %w", name, explain(err))
		}
	}
	return t, nil
}

// rowidRange estimates the rows of a rowid table from its smallest and
// largest rowid, and marks an ordinary (not virtual) table with more than
// a few rowids as one split.go can cut into rowid ranges.
func (s *Source) rowidRange(t *tableSpec, key, from string) error {
	// Two subqueries: SQLite answers a lone min() or max() of the rowid
	// from one end of the b-tree, but both in one SELECT scan the whole
	// table. A virtual table scans either way, so once.
	q := "SELECT (SELECT min(" + key + ")" + from + "),(SELECT max(" + key + ")" + from + ")"
	if t.info.Virtual {
		q = "SELECT min(" + key + "),max(" + key + ")" + from
	}
	st, _, err := s.conn.PrepareTransient(q)
	if err != nil {
		return err
	}
	defer st.Finalize()
	ok, err := st.Step()
	if err != nil || !ok || st.ColumnType(0) != sqlite.TypeInteger || st.ColumnType(1) != sqlite.TypeInteger {
		return err // an empty table, or a virtual table without integer rowids
	}
	lo, hi := st.ColumnInt64(0), st.ColumnInt64(1)
	span := uint64(hi - lo) // the distance, even across all of int64
	if span < math.MaxInt64 {
		t.info.EstimatedRows = int64(span) + 1
	}
	if !t.info.Virtual && span >= splitMinRowids {
		t.split, t.minKey, t.maxKey = true, lo, hi
	}
	return nil
}

func (s *Source) columns(table string) ([]columnInfo, error) {
	st, _, err := s.conn.PrepareTransient("SELECT name, type, pk, hidden FROM pragma_table_xinfo(?1)")
	if err != nil {
		return nil, err
	}
	defer st.Finalize()
	st.BindText(1, table)
	var out []columnInfo
	for {
		ok, err := st.Step()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, columnInfo{name: st.ColumnText(0), typ: st.ColumnText(1), pk: st.ColumnInt(2), hidden: st.ColumnInt(3)})
	}
}
