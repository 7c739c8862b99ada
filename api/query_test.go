package api

import (
	"testing"
)

func TestQueryShapes(t *testing.T) {
	e := newEnv(t)
	e.query("/query", `{"sql":"CREATE TABLE v(id INTEGER PRIMARY KEY, i, r, s, b, n)"}`)
	e.query("/query", `{"sql":"INSERT INTO v VALUES (1, 9223372036854775807, 1.5, 'a\"b\n', X'00FF', NULL)"}`)
	e.query("/query", `{"sql":"INSERT INTO v VALUES (?, ?, ?, ?, NULL, ?)","params":[2, -9223372036854775808, 1e999, "ü", true]}`)
	e.query("/query", `{"sql":"INSERT INTO v(id, i, s) VALUES (:id, @i, $s)","params":{"id":3,"i":0.25,"$s":null}}`)

	tests := []struct {
		name, path, body, want string
	}{
		{"rows as objects", "/query", `{"sql":"SELECT id, i, r, s, b, n FROM v ORDER BY id"}`,
			`[{"b":"AP8=","i":9223372036854775807,"id":1,"n":null,"r":1.5,"s":"a\"b\n"},` +
				`{"b":null,"i":-9223372036854775808,"id":2,"n":1,"r":"Infinity","s":"ü"},` +
				`{"b":null,"i":0.25,"id":3,"n":null,"r":null,"s":null}]`},
		{"raw", "/query/raw", `{"sql":"SELECT id, s FROM v WHERE id <= ? ORDER BY id","params":[2]}`,
			`{"columns":["id","s"],"meta":{"rows_read":2,"rows_written":0},"rows":[[1,"a\"b\n"],[2,"ü"]]}`},
		{"raw write meta", "/query/raw", `{"sql":"UPDATE v SET n = 7 WHERE id >= 2"}`,
			`{"columns":[],"meta":{"rows_read":0,"rows_written":2},"rows":[]}`},
		{"empty result", "/query", `{"sql":"SELECT * FROM v WHERE 0"}`, `[]`},
		{"last statement's rows", "/query", `{"sql":"SELECT 1 AS a; SELECT 2 AS b;"}`, `[{"b":2}]`},
		{"write then read", "/query", `{"sql":"UPDATE v SET n = 8 WHERE id = 1; SELECT n FROM v WHERE id = 1"}`, `[{"n":8}]`},
		{"transaction", "/query", `{"transaction":[{"sql":"INSERT INTO v(id) VALUES (?)","params":[10]},{"sql":"SELECT count(*) AS c FROM v"}]}`,
			`[[],[{"c":4}]]`},
		{"raw transaction", "/query/raw", `{"transaction":[{"sql":"SELECT 1 AS x"},{"sql":"SELECT :y AS y","params":{"y":"z"}}]}`,
			`[{"columns":["x"],"meta":{"rows_read":1,"rows_written":0},"rows":[[1]]},{"columns":["y"],"meta":{"rows_read":1,"rows_written":0},"rows":[["z"]]}]`},
		{"big float and int params", "/query", `{"sql":"SELECT typeof(?) AS a, typeof(?) AS b, typeof(?) AS c","params":[1, 1.0, 99999999999999999999]}`,
			`[{"a":"integer","b":"real","c":"real"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustJSON(e.query(tt.path, tt.body)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestQueryTransactionRollsBack(t *testing.T) {
	e := newEnv(t)
	e.query("/query", `{"sql":"CREATE TABLE a(x UNIQUE)"}`)
	code, b, _ := e.call("POST", "/query", adminToken, `{"transaction":[{"sql":"INSERT INTO a VALUES (1)"},{"sql":"INSERT INTO a VALUES (1)"}]}`)
	if code != 400 {
		t.Fatalf("%d %s", code, b)
	}
	if got := mustJSON(e.query("/query", `{"sql":"SELECT count(*) AS n FROM a"}`)); got != `[{"n":0}]` {
		t.Errorf("transaction not rolled back: %s", got)
	}
	// The connection went back to the pool clean: a later write works.
	e.query("/query", `{"sql":"INSERT INTO a VALUES (2)"}`)
}

func TestQueryPerDatabase(t *testing.T) {
	e := newEnv(t)
	e.query("/query", `{"sql":"CREATE TABLE only_main(x)"}`)
	e.query("/db/other/query", `{"sql":"CREATE TABLE only_other(x)"}`)
	e.query("/db/main/query", `{"sql":"SELECT * FROM only_main"}`)
	code, b, _ := e.call("POST", "/db/other/query", adminToken, `{"sql":"SELECT * FROM only_main"}`)
	if code != 400 {
		t.Fatalf("other database sees main's table: %d %s", code, b)
	}
}

// TestClientSQLLimits checks that client tokens cannot reach files
// through ATTACH or VACUUM INTO, nor change settings with PRAGMA, while
// admin tokens can.
func TestClientSQLLimits(t *testing.T) {
	e := newEnv(t)
	e.query("/query", `{"sql":"CREATE TABLE t(a)"}`)
	attach := `{"sql":"ATTACH DATABASE '` + e.dir + `/x.db' AS x"}`
	vacuum := `{"sql":"VACUUM INTO '` + e.dir + `/copy.db'"}`
	tests := []struct {
		body  string
		token string
		want  int
	}{
		{attach, clientToken, 400},
		{vacuum, clientToken, 400},
		{`{"sql":"PRAGMA journal_mode=DELETE"}`, clientToken, 400},
		{`{"sql":"PRAGMA writable_schema=ON"}`, clientToken, 400},
		{`{"sql":"PRAGMA user_version=5"}`, clientToken, 400},
		{`{"sql":"PRAGMA user_version"}`, clientToken, 200},
		{`{"sql":"PRAGMA table_info(t)"}`, clientToken, 200},
		{`{"sql":"SELECT * FROM pragma_table_info('t')"}`, clientToken, 200},
		{`{"sql":"INSERT INTO t VALUES (1)"}`, clientToken, 200},
		{vacuum, adminToken, 200},
		{`{"sql":"PRAGMA user_version=5"}`, adminToken, 200},
	}
	for _, tt := range tests {
		code, b, _ := e.call("POST", "/query", tt.token, tt.body)
		if code != tt.want {
			t.Errorf("%s as %s: %d %s, want %d", tt.body, tt.token, code, b, tt.want)
		}
	}
	if got := mustJSON(e.query("/query", `{"sql":"PRAGMA journal_mode"}`)); got != `[{"journal_mode":"wal"}]` {
		t.Errorf("journal_mode %s", got)
	}
}
