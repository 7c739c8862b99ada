package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
)

// TestServeE2E drives the real `sluice serve` binary, with versitygw as
// its S3 store, through a plain HTTP client as a user would: it creates
// and fills tables through /query, exports them in every format, fetches
// each export through the presigned downloadUrl and the download route
// (whole, and cut midway then resumed with Range), restores the SQL dump
// with `sluice restore` and compares every value with the source, then
// cancels a running export and checks the bucket holds nothing of it.
func TestServeE2E(t *testing.T) {
	srv := testsupport.S3(t)
	env, client := srv.AWSEnv(), srv.Admin(t)
	ctx := context.Background()
	bucket := srv.NewBucket(t, "sluice-e2e")
	endpoint := srv.Endpoint
	envMap := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		envMap[k] = v
	}
	dir := t.TempDir()
	const token = "e2e-admin-token"
	cfg := map[string]any{
		"dataDir": filepath.Join(dir, "data"),
		"store": map[string]any{"type": "s3", "s3": map[string]any{
			"endpoint": endpoint, "region": envMap["AWS_REGION"], "bucket": bucket, "prefix": "exports/",
			"pathStyle": true, "insecure": strings.HasPrefix(endpoint, "http://"),
			"accessKeyId": envMap["AWS_ACCESS_KEY_ID"], "secretAccessKey": envMap["AWS_SECRET_ACCESS_KEY"],
		}},
		"tokens": map[string]any{"admin": []string{token}},
	}
	cfgBytes, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "sluice.json")
	if err := os.WriteFile(cfgPath, cfgBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startE2EServer(t, dir, cfgPath, token)
	srcDB := filepath.Join(dir, "data", "default.db")

	// Without the token nothing but the public routes answer.
	if resp, _ := s.do("POST", "/query", []byte(`{"sql":"SELECT 1"}`), http.Header{"Authorization": {"Bearer wrong"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("query with a wrong token: %d", resp.StatusCode)
	}

	const bulkRows = 12000
	loadE2EData(t, s, bulkRows)

	formats := []struct {
		format, compress string
		contentType      string
		check            func(t *testing.T, b []byte)
	}{
		{"sql", "", "application/sql", nil},
		{"csv", "", "application/zip", func(t *testing.T, b []byte) { checkE2ECSV(t, b, bulkRows) }},
		{"json", "gzip", "application/gzip", func(t *testing.T, b []byte) { checkE2EJSON(t, gunzip(t, b), bulkRows) }},
		{"ndjson", "zstd", "application/zstd", func(t *testing.T, b []byte) { checkE2ENDJSON(t, unzstd(t, b), bulkRows) }},
	}
	auth := http.Header{"Authorization": {"Bearer " + token}}
	var sqlDump []byte
	keys := map[string]bool{}
	for _, f := range formats {
		t.Run(f.format, func(t *testing.T) {
			opts := map[string]any{"format": f.format, "chunkSize": 700}
			if f.compress != "" {
				opts["compress"] = f.compress
			}
			if f.format == "sql" {
				opts["preserveRowids"] = true // the restore is compared rowid for rowid
				opts["verify"] = true         // read back, restored and checked against the manifest
			}
			id := s.submit(opts)
			j := s.waitJob(id, 60*time.Second, func(j e2eJob) bool { return j.Status == "completed" })
			keys["exports/"+j.Key] = true // the store's prefix
			keys["exports/"+j.Key+".manifest.json"] = true
			if f.format == "sql" {
				for deadline := time.Now().Add(60 * time.Second); j.Verification == nil || j.Verification.Status != "passed"; time.Sleep(50 * time.Millisecond) {
					if j.Verification != nil && j.Verification.Status == "failed" || time.Now().After(deadline) {
						t.Fatalf("verification %+v\nserver log:\n%s", j.Verification, s.logs)
					}
					j = s.status(id)
				}
			}
			if j.SHA256 == "" || j.Size <= 0 || j.DirectURL == "" {
				t.Fatalf("completed job lacks sha256, size or downloadUrl: %+v", j)
			}
			if u, err := url.Parse(j.DirectURL); err != nil || !strings.Contains(endpoint, u.Host) {
				t.Fatalf("downloadUrl %q does not point at the S3 endpoint %s", j.DirectURL, endpoint)
			}

			// 1. The presigned S3 URL, with no sluice token.
			plain := &http.Client{Timeout: 60 * time.Second}
			resp, err := plain.Get(j.DirectURL)
			if err != nil {
				t.Fatal(err)
			}
			viaS3, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("downloadUrl: %d %v", resp.StatusCode, err)
			}
			if int64(len(viaS3)) != j.Size || sha256Hex(viaS3) != j.SHA256 {
				t.Fatalf("downloadUrl gave %d bytes sha256 %s; status says %d bytes sha256 %s", len(viaS3), sha256Hex(viaS3), j.Size, j.SHA256)
			}

			// 2. The download route, whole.
			dl := "/export/dump/download/" + id
			resp, full := s.do("GET", dl, nil, nil)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(full, viaS3) {
				t.Fatalf("download route: %d, %d bytes, equal to the S3 object: %v", resp.StatusCode, len(full), bytes.Equal(full, viaS3))
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, f.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, f.contentType)
			}
			if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") || !strings.Contains(cd, "filename=") {
				t.Errorf("Content-Disposition %q", cd)
			}
			etag := resp.Header.Get("ETag")
			if !strings.Contains(etag, j.SHA256) {
				t.Errorf("ETag %q does not carry the sha256 %s", etag, j.SHA256)
			}
			if resp, _ := s.do("GET", dl, nil, http.Header{"If-None-Match": {etag}}); resp.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match with the ETag: %d, want 304", resp.StatusCode)
			}
			if resp, body := s.do("HEAD", dl, nil, nil); resp.StatusCode != http.StatusOK || resp.ContentLength != j.Size || len(body) != 0 {
				t.Errorf("HEAD: %d, Content-Length %d (size %d), %d body bytes", resp.StatusCode, resp.ContentLength, j.Size, len(body))
			}

			// 3. Cut midway and resumed with Range, on both URLs.
			mid := j.Size / 2
			for _, src := range []struct {
				name string
				url  string
				hdr  http.Header
			}{{"download route", s.base + dl, auth}, {"directUrl", j.DirectURL, http.Header{}}} {
				head := cutDownload(t, plain, src.url, src.hdr, mid)
				tail := resume(t, plain, src.url, src.hdr, mid, j.Size)
				joined := append(head, tail...)
				if !bytes.Equal(joined, full) || sha256Hex(joined) != j.SHA256 {
					t.Fatalf("%s: %d + %d resumed bytes differ from the whole object (%d)", src.name, len(head), len(tail), len(full))
				}
			}
			if f.check != nil {
				f.check(t, full)
			} else {
				sqlDump = full
			}
		})
	}
	if t.Failed() || sqlDump == nil {
		t.FailNow()
	}

	t.Run("restore", func(t *testing.T) {
		dumpFile := filepath.Join(dir, "dump.sql")
		if err := os.WriteFile(dumpFile, sqlDump, 0o644); err != nil {
			t.Fatal(err)
		}
		restored := filepath.Join(dir, "restored.db")
		if r := runSluice(t, dir, nil, nil, "restore", "--db", restored, dumpFile); r.code != 0 {
			t.Fatalf("restore exit %d:\n%s", r.code, r.stderr)
		}
		sameContent(t, srcDB, restored)
	})

	t.Run("cancel", func(t *testing.T) {
		// Enough incompressible data (≈40 MB, ≈80 MB as SQL hex) that the
		// job is still uploading parts when it is cancelled.
		s.query(map[string]any{"sql": `CREATE TABLE big(id INTEGER PRIMARY KEY, data BLOB)`})
		for i := 0; i < 4; i++ {
			s.query(map[string]any{"sql": `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 160)
				INSERT INTO big(data) SELECT randomblob(65536) FROM c`})
		}
		id := s.submit(map[string]any{"format": "sql", "tables": "big", "chunkSize": 2})
		running := s.waitJob(id, 60*time.Second, func(j e2eJob) bool { return j.Status == "processing" && j.Progress.Bytes > 0 })
		resp, body := s.do("DELETE", "/export/dump/"+id, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
		}
		j := s.waitJob(id, 30*time.Second, func(j e2eJob) bool { return j.Status == "cancelled" })
		t.Logf("cancelled after %d rows, %d bytes, %d parts", running.Progress.Rows, running.Progress.Bytes, running.Progress.PartsUploaded)
		if resp, body := s.do("GET", "/export/dump/download/"+id, nil, nil); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "cancelled") {
			t.Fatalf("download of a cancelled job: %d %s", resp.StatusCode, body)
		}
		// The job's multipart upload is aborted and nothing is left under
		// its key; the bucket holds exactly the four completed exports
		// and their manifests.
		deadline := time.Now().Add(20 * time.Second)
		for {
			var uploads, objects []string
			for u := range client.ListIncompleteUploads(ctx, bucket, "", true) {
				if u.Err != nil {
					t.Fatalf("list uploads: %v", u.Err)
				}
				uploads = append(uploads, u.Key+" "+u.UploadID)
			}
			for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
				if o.Err != nil {
					t.Fatalf("list objects: %v", o.Err)
				}
				if !keys[o.Key] {
					objects = append(objects, o.Key)
				}
			}
			if len(uploads) == 0 && len(objects) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after cancelling job %s (key %s): incomplete uploads %v, unexpected objects %v", id, j.Key, uploads, objects)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// loadE2EData creates tables through /query and fills them with every
// storage class and the values dumps tend to lose, plus bulkRows
// generated rows with blobs (a few MB in all).
func loadE2EData(t *testing.T, s *e2eServer, bulkRows int) {
	t.Helper()
	s.query(map[string]any{"sql": `
		CREATE TABLE special(id INTEGER PRIMARY KEY, i INTEGER, r REAL, txt TEXT, b BLOB, u, n NUMERIC);
		CREATE TABLE bulk(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, score REAL, payload BLOB, note);
		CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
		CREATE TABLE implicit(a, b);
		CREATE INDEX bulk_score ON bulk(score);
		CREATE VIEW top_bulk AS SELECT id, name FROM bulk WHERE score > 100;
		CREATE TRIGGER kv_touch AFTER INSERT ON kv BEGIN SELECT 1; END;`})
	ins := `INSERT INTO special(i, r, txt, b, u, n) VALUES (?, ?, ?, NULL, ?, ?)`
	var tx []map[string]any
	for _, p := range [][]any{
		{9223372036854775807, 1.0, "plain", 1, "12"},
		{-9223372036854775808, json.Number("-0.0"), "nul\u0000inside", 2.5, "3.0"},
		{0, json.Number("1e999"), "", "text in an untyped column", "abc"},
		{nil, json.Number("-1e999"), "ünïcödé 東京 \"quotes\" 'single' \n\r\t", nil, nil},
		{9007199254740993, 0.1, "line\nbreak,comma", true, 1e300},
		{-1, 5e-324, "\u0000", json.Number("-0.0"), "0x10"},
	} {
		tx = append(tx, map[string]any{"sql": ins, "params": p})
	}
	// Blobs cannot be JSON parameters: write them with SQL expressions.
	tx = append(tx,
		map[string]any{"sql": `INSERT INTO special(i, b, u) VALUES (7, X'00FF00', X'DEADBEEF')`},
		map[string]any{"sql": `INSERT INTO special(i, b, u) VALUES (8, X'', zeroblob(3))`},
		map[string]any{"sql": `INSERT INTO special(i, txt, b) VALUES (9, CAST(X'6100620063' AS TEXT), randomblob(70000))`},
		map[string]any{"sql": `INSERT INTO kv VALUES (?, ?), (?, ?), (?, ?), (?, ?)`, "params": []any{"a", 1, "b", 1.5, "c", "x\u0000y", "d", nil}},
		map[string]any{"sql": `INSERT INTO kv VALUES ('e', X'0102')`},
		map[string]any{"sql": `INSERT INTO implicit VALUES (1, 'one'), (2, 'two'), (3, 'three')`},
		map[string]any{"sql": `DELETE FROM implicit WHERE a = 2`},
	)
	s.query(map[string]any{"transaction": tx})
	s.query(map[string]any{"sql": `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < ?)
		INSERT INTO bulk(name, score, payload, note)
		SELECT printf('row %d ünï', i), i * 0.25 - 50,
			CASE WHEN i % 7 = 0 THEN NULL ELSE randomblob(100 + i % 300) END,
			CASE i % 5 WHEN 0 THEN i WHEN 1 THEN i / 3.0 WHEN 2 THEN 'n' || i WHEN 3 THEN randomblob(8) ELSE NULL END
		FROM c`, "params": []any{bulkRows}})
	var got struct {
		Result []struct {
			N int `json:"n"`
		} `json:"result"`
	}
	if err := json.Unmarshal(s.query(map[string]any{"sql": "SELECT count(*) AS n FROM bulk"}), &got); err != nil || len(got.Result) != 1 || got.Result[0].N != bulkRows {
		t.Fatalf("bulk rows: %+v %v", got, err)
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func unzstd(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("unzstd: %v", err)
	}
	return out
}

// e2eRowCounts are the rows each table holds after loadE2EData.
func e2eRowCounts(bulkRows int) map[string]int {
	return map[string]int{"special": 9, "bulk": bulkRows, "kv": 5, "implicit": 2}
}

func checkE2ECSV(t *testing.T, b []byte, bulkRows int) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("csv export is not a zip: %v", err)
	}
	got := map[string]int{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(rc).ReadAll()
		rc.Close()
		if err != nil {
			t.Fatalf("zip entry %s: %v", f.Name, err)
		}
		got[strings.TrimSuffix(f.Name, ".csv")] = len(recs) - 1 // header
	}
	for tbl, n := range e2eRowCounts(bulkRows) {
		if got[tbl] != n {
			t.Errorf("csv: table %s has %d rows, want %d (entries %v)", tbl, got[tbl], n, got)
		}
	}
}

func checkE2EJSON(t *testing.T, b []byte, bulkRows int) {
	t.Helper()
	// StarbaseDB's shape: {"<table>": [rows], …}.
	var doc map[string][]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("json export: %v", err)
	}
	got := map[string]int{}
	for name, rows := range doc {
		got[name] = len(rows)
	}
	for tbl, n := range e2eRowCounts(bulkRows) {
		if got[tbl] != n {
			t.Errorf("json: table %s has %d rows, want %d", tbl, got[tbl], n)
		}
	}
}

func checkE2ENDJSON(t *testing.T, b []byte, bulkRows int) {
	t.Helper()
	got := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Table string          `json:"table"`
			Row   json.RawMessage `json:"row"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Row == nil {
			t.Fatalf("ndjson line %.100s: %v", sc.Text(), err)
		}
		got[line.Table]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for tbl, n := range e2eRowCounts(bulkRows) {
		if got[tbl] != n {
			t.Errorf("ndjson: table %s has %d rows, want %d", tbl, got[tbl], n)
		}
	}
}
