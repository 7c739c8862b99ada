package dump

import "strings"

// sqliteKeywords is SQLite 3.40's keyword list (sqlite3_keyword_check):
// sqlite3 .dump quotes an identifier that is one of them.
var sqliteKeywords = func() map[string]bool {
	m := make(map[string]bool)
	for _, k := range strings.Fields(`ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC
	ATTACH AUTOINCREMENT BEFORE BEGIN BETWEEN BY CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT
	CONFLICT CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP DATABASE
	DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH DISTINCT DO DROP EACH ELSE END ESCAPE EXCEPT
	EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FILTER FIRST FOLLOWING FOR FOREIGN FROM FULL GENERATED
	GLOB GROUP GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX INDEXED INITIALLY INNER INSERT INSTEAD
	INTERSECT INTO IS ISNULL JOIN KEY LAST LEFT LIKE LIMIT MATCH MATERIALIZED NATURAL NO NOT
	NOTHING NOTNULL NULL NULLS OF OFFSET ON OR ORDER OTHERS OUTER OVER PARTITION PLAN PRAGMA
	PRECEDING PRIMARY QUERY RAISE RANGE RECURSIVE REFERENCES REGEXP REINDEX RELEASE RENAME
	REPLACE RESTRICT RETURNING RIGHT ROLLBACK ROW ROWS SAVEPOINT SELECT SET TABLE TEMP TEMPORARY
	THEN TIES TO TRANSACTION TRIGGER UNBOUNDED UNION UNIQUE UPDATE USING VACUUM VALUES VIEW
	VIRTUAL WHEN WHERE WINDOW WITH WITHOUT`) {
		m[k] = true
	}
	return m
}()

// needsQuote reports whether sqlite3 .dump would double-quote name
// (shell.c quoteChar): anything but an ASCII identifier, or a keyword.
func needsQuote(name string) bool {
	if name == "" {
		return true
	}
	c := name[0]
	if !isASCIIAlpha(c) && c != '_' {
		return true
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isASCIIAlpha(c) && !isDigit(c) && c != '_' {
			return true
		}
	}
	return sqliteKeywords[strings.ToUpper(name)]
}

func isASCIIAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

// appendIdent appends name as sqlite3 .dump writes it: bare when that is
// safe, else in double quotes with inner quotes doubled.
func appendIdent(b []byte, name string) []byte {
	if !needsQuote(name) {
		return append(b, name...)
	}
	return appendQuoted(b, name, '"')
}

// appendQuoted appends name between q quotes, doubling any q inside.
func appendQuoted(b []byte, name string, q byte) []byte {
	b = append(b, q)
	for i := 0; i < len(name); i++ {
		if name[i] == q {
			b = append(b, q)
		}
		b = append(b, name[i])
	}
	return append(b, q)
}

// quoteIdent always double-quotes name, for the queries sluice runs.
func quoteIdent(name string) string { return string(appendQuoted(nil, name, '"')) }

// quoteLiteral returns s as a SQL string literal (what %Q/%q produce).
func quoteLiteral(s string) string { return string(appendQuoted(nil, s, '\'')) }

// endsInComment reports how the text of a CREATE statement ends: 0 in
// ordinary text, 1 inside a /* comment, 2 inside a -- comment. sqlite3
// .dump closes such a comment before it writes ";" (printSchemaLine).
func endsInComment(sql string) int {
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; c {
		case '\'', '"', '`':
			j := i + 1
			for j < len(sql) {
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			i = j
		case '[':
			j := strings.IndexByte(sql[i:], ']')
			if j < 0 {
				return 0
			}
			i += j
		case '-':
			if i+1 < len(sql) && sql[i+1] == '-' {
				j := strings.IndexByte(sql[i:], '\n')
				if j < 0 {
					return 2
				}
				i += j
			}
		case '/':
			if i+1 < len(sql) && sql[i+1] == '*' {
				j := strings.Index(sql[i+2:], "*/")
				if j < 0 {
					return 1
				}
				i += j + 3
			}
		}
	}
	return 0
}
