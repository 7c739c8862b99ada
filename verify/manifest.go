// Package verify proves that a stored dump holds exactly the rows of the
// database it came from: it writes and reads the manifest stored beside
// every export (<key>.manifest.json), recomputes per-table digests from a
// dump (SQL by restoring it into a scratch database, csv, json and ndjson
// by parsing) or from a live database, and compares them. docs/verify.md
// describes the digest and what it proves.
package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
)

// ManifestSuffix is appended to an object's key (or a file's name) to
// name its manifest.
const ManifestSuffix = ".manifest.json"

// MaxManifestBytes bounds how much of a manifest is read: a manifest is
// untrusted input.
const MaxManifestBytes = 64 << 20

// ManifestKey returns the manifest's key for an object key.
func ManifestKey(key string) string { return key + ManifestSuffix }

// IsManifestKey reports whether key names a manifest.
func IsManifestKey(key string) bool { return strings.HasSuffix(key, ManifestSuffix) }

// Manifest describes one stored export.
type Manifest struct {
	Sluice      string             `json:"sluice"` // version of the sluice that wrote it
	Format      sluice.Format      `json:"format"`
	Compression sluice.Compression `json:"compression"`
	Options     ManifestOptions    `json:"options"`
	Database    Database           `json:"database"`
	Consistency sluice.Consistency `json:"consistency,omitempty"`
	Resumed     bool               `json:"resumed"`
	Object      Object             `json:"object"`
	Schema      string             `json:"schemaDigest"`
	Tables      []dump.TableDigest `json:"tables"`
	Time        time.Time          `json:"time"`
}

// ManifestOptions are the dump options that change what the digests
// cover.
type ManifestOptions struct {
	Tables         []string `json:"tables,omitempty"`
	Exclude        []string `json:"exclude,omitempty"`
	SchemaOnly     bool     `json:"schemaOnly,omitempty"`
	DataOnly       bool     `json:"dataOnly,omitempty"`
	PreserveRowids bool     `json:"preserveRowids,omitempty"`
	PlainCSV       bool     `json:"plainCsv,omitempty"` // csv of one table as a plain CSV document, not a zip
}

// Database is what is known of the source database.
type Database struct {
	Name      string `json:"name"`
	PageSize  int64  `json:"pageSize,omitempty"`
	PageCount int64  `json:"pageCount,omitempty"`
}

// Object is the stored export the manifest describes.
type Object struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// NewManifest fills a manifest from a finished dump: its options, the
// source's page geometry and digests. The caller sets Object, Database.Name,
// Consistency, Resumed and Sluice.
func NewManifest(opts dump.Options, c sluice.Compression, plan dump.Plan, d dump.Digests) *Manifest {
	return &Manifest{
		Format:      opts.Format,
		Compression: c,
		Options: ManifestOptions{Tables: opts.Tables, Exclude: opts.Exclude, SchemaOnly: opts.SchemaOnly,
			DataOnly: opts.DataOnly, PreserveRowids: opts.PreserveRowids, PlainCSV: opts.PlainCSV},
		Database: Database{PageSize: plan.PageSize, PageCount: plan.PageCount},
		Schema:   d.Schema,
		Tables:   d.Tables,
		Time:     time.Now().UTC(),
	}
}

// DumpOptions returns the dump options that reproduce the manifest's
// table selection, for a digest of a live database (--db).
func (m *Manifest) DumpOptions() dump.Options {
	return dump.Options{Format: m.Format, Tables: m.Options.Tables, Exclude: m.Options.Exclude,
		SchemaOnly: m.Options.SchemaOnly, DataOnly: m.Options.DataOnly, PreserveRowids: m.Options.PreserveRowids,
		PlainCSV: m.Options.PlainCSV}
}

// Input returns the verification input for a dump that this manifest
// describes (the caller sets R, Restore and TempDir).
func (m *Manifest) Input() Input {
	in := Input{Format: m.Format, PreserveRowids: m.Options.PreserveRowids}
	if m.Options.PlainCSV && len(m.Tables) == 1 {
		in.PlainCSVTable = m.Tables[0].Name
	}
	return in
}

// Digests returns the manifest's digests.
func (m *Manifest) Digests() dump.Digests {
	return dump.Digests{Schema: m.Schema, Tables: m.Tables}
}

// Marshal returns the manifest as indented JSON.
func (m *Manifest) Marshal() []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return append(b, '\n')
}

// ReadManifest parses a manifest, refusing one that is too large or not
// a sluice manifest.
func ReadManifest(r io.Reader) (*Manifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("verify: read manifest: %w", err)
	}
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("verify: %w: manifest larger than %d bytes", sluice.ErrTooLarge, MaxManifestBytes)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("verify: %w: manifest: %v", sluice.ErrInvalid, err)
	}
	if m.Format, err = sluice.ParseFormat(string(m.Format)); err != nil {
		return nil, fmt.Errorf("verify: manifest: %w", err)
	}
	if m.Compression, err = sluice.ParseCompression(string(m.Compression)); err != nil {
		return nil, fmt.Errorf("verify: manifest: %w", err)
	}
	if m.Schema == "" && m.Tables == nil {
		return nil, fmt.Errorf("verify: %w: manifest has no digests", sluice.ErrInvalid)
	}
	return &m, nil
}
