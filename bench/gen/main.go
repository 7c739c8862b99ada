// Command gen writes a benchmark database for sluice: several tables of
// mixed types, one with millions of small rows, one with large BLOBs, an
// untyped column holding every storage class, a WITHOUT ROWID table and
// indexes, in WAL mode. The content is deterministic for a given -seed and
// -scale; -scale 1 gives about 1.1 GB, and the size grows linearly.
//
//	go run ./bench/gen -o /tmp/bench.db -scale 1
//
// -profile picks another shape of data, for the engine's BLOB paths:
// "blobs" is 1.5M rows with small random BLOBs plus sixty 1 MiB BLOBs
// (about 0.4 GB at scale 1), "bigblobs" is nearly all 1 MiB BLOBs (1,000
// of them at scale 1, about 1.05 GB).
//
// It is a benchmark tool, not part of the product or of `go test`.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Row counts at scale 1.
const (
	eventsRows = 6_000_000 // small rows
	usersRows  = 300_000
	mixedRows  = 400_000
	blobRows   = 1_200 // large BLOBs, 256 KiB – 768 KiB each (~600 MB)
	batchRows  = 20_000

	smallBlobRows = 1_500_000 // profile blobs: rows with a 16–300 byte BLOB
	mibBlobs      = 60        // profile blobs: 1 MiB BLOBs
	bigBlobRows   = 1_000     // profile bigblobs: 1 MiB BLOBs
)

var words = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima
mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu
river stone cloud ember maple cedar harbor meadow canyon glacier prairie summit valley
ünïcödé naïve café 東京 données straße`)

func main() {
	out := flag.String("o", "bench.db", "database file to create (must not exist)")
	scale := flag.Float64("scale", 1, "size multiplier; 1 is about 1.1 GB")
	seed := flag.Uint64("seed", 1, "random seed")
	profile := flag.String("profile", "mixed", "shape of the data: mixed, blobs (many small BLOBs and sixty 1 MiB ones) or bigblobs (nearly all 1 MiB BLOBs)")
	flag.Parse()
	if err := run(context.Background(), *out, *profile, *scale, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// table is one table's rows: how many, the INSERT, and how to bind row i.
type table struct {
	name string
	rows int
	sql  string
	bind func(s *sqlite.Stmt, i int)
}

func run(ctx context.Context, path, profile string, scale float64, seed uint64) error {
	if scale <= 0 {
		return errors.New("-scale must be positive")
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := func(base int) int { return max(1, int(float64(base)*scale)) }
	var schema string
	var tables []table
	switch profile {
	case "mixed":
		schema, tables = mixedProfile(r, n)
	case "blobs":
		schema, tables = blobsProfile(r, n)
	case "bigblobs":
		schema, tables = bigBlobsProfile(r, n)
	default:
		return fmt.Errorf("unknown -profile %q (mixed, blobs or bigblobs)", profile)
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists; remove it first", path)
	}
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer conn.Close()
	conn.SetInterrupt(ctx.Done())
	for _, p := range []string{"PRAGMA journal_mode=WAL", "PRAGMA synchronous=OFF", "PRAGMA cache_size=-65536"} {
		if err := sqlitex.ExecuteTransient(conn, p, nil); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	if err := sqlitex.ExecuteScript(conn, schema, nil); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	for _, st := range tables {
		t0 := time.Now()
		if err := fill(conn, st.sql, st.rows, st.bind); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		fmt.Fprintf(os.Stderr, "gen: %s: %d rows in %.1fs\n", st.name, st.rows, time.Since(t0).Seconds())
	}
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA wal_checkpoint(TRUNCATE)", nil); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: wrote %s (%.2f GB)\n", path, float64(fi.Size())/1e9)
	return nil
}

// mixedProfile is the default database: small rows, mixed types, a
// WITHOUT ROWID table and large BLOBs.
func mixedProfile(r *rand.Rand, n func(int) int) (string, []table) {
	schema := `
CREATE TABLE users(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  email TEXT NOT NULL,
  created DATETIME,
  active BOOLEAN,
  score REAL,
  bio TEXT,
  avatar BLOB
);
CREATE TABLE events(
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  kind TEXT NOT NULL,
  amount REAL,
  ok INTEGER
);
CREATE TABLE attachments(
  id INTEGER PRIMARY KEY,
  user_id INTEGER,
  name TEXT,
  mime TEXT,
  data BLOB
);
CREATE TABLE mixed(
  k TEXT PRIMARY KEY,
  v,
  n NUMERIC
) WITHOUT ROWID;
CREATE INDEX events_user ON events(user_id);
CREATE UNIQUE INDEX users_email ON users(email);
CREATE VIEW big_spenders AS SELECT user_id, sum(amount) AS total FROM events GROUP BY user_id HAVING total > 1000;
`
	nUsers := n(usersRows)
	return schema, []table{
		{"users", nUsers, "INSERT INTO users(name,email,created,active,score,bio,avatar) VALUES(?,?,?,?,?,?,?)",
			func(s *sqlite.Stmt, i int) {
				s.BindText(1, phrase(r, 2))
				s.BindText(2, fmt.Sprintf("user%d@example.com", i))
				s.BindText(3, time.Unix(1_500_000_000+int64(r.IntN(200_000_000)), 0).UTC().Format("2006-01-02 15:04:05"))
				s.BindInt64(4, int64(r.IntN(2)))
				s.BindFloat(5, r.NormFloat64()*100)
				s.BindText(6, phrase(r, 10+r.IntN(30)))
				if r.IntN(4) == 0 {
					s.BindBytes(7, randBytes(r, 64+r.IntN(512)))
				} else {
					s.BindNull(7)
				}
			}},
		{"events", n(eventsRows), "INSERT INTO events(user_id,ts,kind,amount,ok) VALUES(?,?,?,?,?)",
			func(s *sqlite.Stmt, i int) {
				s.BindInt64(1, int64(1+r.IntN(nUsers)))
				s.BindInt64(2, 1_600_000_000_000+int64(i)*37)
				s.BindText(3, words[r.IntN(12)])
				if r.IntN(10) == 0 {
					s.BindNull(4)
				} else {
					s.BindFloat(4, math.Round(r.Float64()*100_000)/100)
				}
				s.BindInt64(5, int64(r.IntN(2)))
			}},
		{"mixed", n(mixedRows), "INSERT INTO mixed(k,v,n) VALUES(?,?,?)",
			func(s *sqlite.Stmt, i int) {
				s.BindText(1, fmt.Sprintf("%s-%08d", words[i%len(words)], i))
				switch i % 6 {
				case 0:
					s.BindInt64(2, int64(r.Uint64()))
				case 1:
					s.BindFloat(2, r.NormFloat64()*1e6)
				case 2:
					s.BindText(2, phrase(r, 1+r.IntN(6)))
				case 3:
					s.BindBytes(2, randBytes(r, 1+r.IntN(48)))
				case 4:
					s.BindNull(2)
				case 5:
					s.BindFloat(2, float64(r.IntN(1000))) // integral REAL
				}
				s.BindText(3, fmt.Sprintf("%d.%02d", r.IntN(10000), r.IntN(100)))
			}},
		{"attachments", n(blobRows), "INSERT INTO attachments(user_id,name,mime,data) VALUES(?,?,?,?)",
			func(s *sqlite.Stmt, i int) {
				s.BindInt64(1, int64(1+r.IntN(nUsers)))
				s.BindText(2, fmt.Sprintf("file-%d.bin", i))
				s.BindText(3, "application/octet-stream")
				s.BindBytes(4, randBytes(r, 256<<10+r.IntN(512<<10)))
			}},
	}
}

// blobsProfile is BLOB-heavy with mostly small values: a table of small
// random BLOBs beside a few columns, and sixty 1 MiB BLOBs.
func blobsProfile(r *rand.Rand, n func(int) int) (string, []table) {
	schema := `
CREATE TABLE readings(
  id INTEGER PRIMARY KEY,
  sensor INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  payload BLOB
);
CREATE TABLE files(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  data BLOB
);
`
	return schema, []table{
		{"readings", n(smallBlobRows), "INSERT INTO readings(sensor,ts,payload) VALUES(?,?,?)",
			func(s *sqlite.Stmt, i int) {
				s.BindInt64(1, int64(r.IntN(5000)))
				s.BindInt64(2, 1_600_000_000_000+int64(i)*53)
				s.BindBytes(3, randBytes(r, 16+r.IntN(285)))
			}},
		{"files", n(mibBlobs), "INSERT INTO files(name,data) VALUES(?,?)", mibBlob(r)},
	}
}

// bigBlobsProfile is nearly all 1 MiB BLOBs.
func bigBlobsProfile(r *rand.Rand, n func(int) int) (string, []table) {
	schema := `
CREATE TABLE files(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  data BLOB
);
`
	return schema, []table{{"files", n(bigBlobRows), "INSERT INTO files(name,data) VALUES(?,?)", mibBlob(r)}}
}

// mibBlob binds a name and 1 MiB of random bytes.
func mibBlob(r *rand.Rand) func(s *sqlite.Stmt, i int) {
	return func(s *sqlite.Stmt, i int) {
		s.BindText(1, fmt.Sprintf("file-%d.bin", i))
		s.BindBytes(2, randBytes(r, 1<<20))
	}
}

// fill inserts rows in transactions of batchRows.
func fill(conn *sqlite.Conn, query string, rows int, bind func(*sqlite.Stmt, int)) (err error) {
	stmt, err := conn.Prepare(query)
	if err != nil {
		return err
	}
	for i := 0; i < rows; {
		end := sqlitex.Transaction(conn)
		for j := 0; j < batchRows && i < rows; j, i = j+1, i+1 {
			bind(stmt, i)
			if _, err = stmt.Step(); err != nil {
				end(&err)
				return err
			}
			if err = stmt.Reset(); err != nil {
				end(&err)
				return err
			}
		}
		end(&err)
		if err != nil {
			return err
		}
	}
	return nil
}

func phrase(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()
}

// randBytes returns n incompressible bytes.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, (n+7)&^7)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n]
}
