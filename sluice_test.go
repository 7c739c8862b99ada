package sluice

import (
	"errors"
	"testing"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"", FormatSQL, false},
		{"sql", FormatSQL, false},
		{" CSV ", FormatCSV, false},
		{"json", FormatJSON, false},
		{"ndjson", FormatNDJSON, false},
		{"xml", "", true},
	}
	for _, tc := range tests {
		got, err := ParseFormat(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseFormat(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseFormat(%q) error %v is not ErrInvalid", tc.in, err)
		}
	}
}

func TestParseCompression(t *testing.T) {
	tests := []struct {
		in      string
		want    Compression
		ext     string
		wantErr bool
	}{
		{"", CompressNone, "", false},
		{"none", CompressNone, "", false},
		{"gzip", CompressGzip, ".gz", false},
		{"gz", CompressGzip, ".gz", false},
		{"ZSTD", CompressZstd, ".zst", false},
		{"zst", CompressZstd, ".zst", false},
		{"brotli", "", "", true},
	}
	for _, tc := range tests {
		got, err := ParseCompression(tc.in)
		if got != tc.want || got.Ext() != tc.ext || (err != nil) != tc.wantErr {
			t.Errorf("ParseCompression(%q) = %q (ext %q), %v", tc.in, got, got.Ext(), err)
		}
	}
}

func TestContentType(t *testing.T) {
	tests := []struct {
		f    Format
		c    Compression
		want string
	}{
		{FormatSQL, CompressNone, "application/sql"},
		{FormatCSV, CompressNone, "application/zip"},
		{FormatJSON, CompressNone, "application/json"},
		{FormatNDJSON, CompressNone, "application/x-ndjson"},
		{FormatSQL, CompressGzip, "application/gzip"},
		{FormatCSV, CompressZstd, "application/zstd"},
	}
	for _, tc := range tests {
		if got := ContentType(tc.f, tc.c); got != tc.want {
			t.Errorf("ContentType(%s, %s) = %q, want %q", tc.f, tc.c, got, tc.want)
		}
	}
}

func TestStateTerminal(t *testing.T) {
	for s, want := range map[State]bool{StateQueued: false, StateRunning: false,
		StateCompleted: true, StateFailed: true, StateCancelled: true} {
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v", s, !want)
		}
	}
}
