package dump

// This file is the seam between the engine (which reads the snapshot and
// drives the steps) and the formatters (sql.go, csv.go, json.go), which
// are written in parallel against it.

// ValueType is a value's SQLite storage class.
type ValueType uint8

// Storage classes, in SQLite's numbering.
const (
	TypeInteger ValueType = 1
	TypeReal    ValueType = 2
	TypeText    ValueType = 3
	TypeBlob    ValueType = 4
	TypeNull    ValueType = 5
)

// Value is one column value exactly as stored: its storage class and its
// bytes. Bytes (for text and blob) is only valid until the next row; a
// formatter must copy what it keeps.
type Value struct {
	Type  ValueType
	Int   int64
	Real  float64
	Bytes []byte // text (may be invalid UTF-8 or hold NULs) or blob
}

// tableMeta is what a formatter knows about the table being written.
type tableMeta struct {
	Name            string   // table name as in sqlite_schema
	Columns         []string // names of the columns in each row's Values, in order (includes "rowid" first when rowids are kept)
	HasRowid        bool     // Values[0] is the implicit rowid (PreserveRowids)
	ExplicitColumns bool     // the SQL INSERT must name its columns (generated columns skipped, or rowid kept)
	Index           int      // 0-based position among the dumped tables
}

// formatter turns the engine's events into bytes, appending to *b. The
// engine flushes *b to the writer at page boundaries. A formatter keeps
// any state it needs across a resume in state()/restore(): the engine
// stores that in Cursor.State at each checkpoint and, when resuming,
// calls restore before the first event.
type formatter interface {
	// begin starts the whole output (SQL header, JSON opening, ...).
	begin(b *[]byte)
	// schema emits one schema statement (SQL text without the trailing
	// ";\n"); formats without schema ignore it.
	schema(b *[]byte, stmt string)
	// beginTable starts a table's rows; endTable finishes them.
	beginTable(b *[]byte, t *tableMeta)
	// row emits one row; len(vals) == len(t.Columns).
	row(b *[]byte, t *tableMeta, vals []Value)
	endTable(b *[]byte, t *tableMeta)
	// end finishes the output (COMMIT, JSON closing, zip directory).
	end(b *[]byte)
	// state returns what the formatter needs to continue after a resume
	// (zip, for instance, its central directory so far and the running
	// CRC and size of the open entry; a formatter counts the bytes it
	// appends itself). restore takes it back.
	state() []byte
	restore(state []byte) error
}
