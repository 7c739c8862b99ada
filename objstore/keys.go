package objstore

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is S3's limit on a key's length in bytes.
const MaxKeyLen = 1024

// Reserved is the first key segment that stores keep for their own
// bookkeeping (the file store's uploads, metadata and temporary files).
// No caller's key may use it, in any store, so that a key accepted by
// one store is accepted by all.
const Reserved = ".sluice"

// ValidateKey reports, as an error wrapping ErrInvalidKey, why key cannot
// name an object the same way in every backend: empty, longer than
// MaxKeyLen, invalid UTF-8, containing NUL or another control character or
// a backslash, absolute (leading slash), ending with a slash (a
// "directory" object), with an empty, "." or ".." segment, or under the
// Reserved directory. Backends
// call it before any I/O, so a key that would escape a directory or mean
// different objects on different stores is refused everywhere.
func ValidateKey(key string) error {
	if err := checkPath(key, false); err != nil {
		return fmt.Errorf("key %q: %w: %s", key, ErrInvalidKey, err)
	}
	if key == Reserved || strings.HasPrefix(key, Reserved+"/") {
		return fmt.Errorf("key %q: %w: %s/ is reserved for the store's own files", key, ErrInvalidKey, Reserved)
	}
	return nil
}

// ValidatePrefix is ValidateKey for List and ListUploads prefixes, which
// may also be empty or end with a slash.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkPath(prefix, true); err != nil {
		return fmt.Errorf("prefix %q: %w: %s", prefix, ErrInvalidKey, err)
	}
	return nil
}

type keyError string

func (e keyError) Error() string { return string(e) }

func checkPath(key string, prefix bool) error {
	switch {
	case key == "":
		return keyError("empty")
	case len(key) > MaxKeyLen:
		return keyError("longer than 1024 bytes")
	case !utf8.ValidString(key):
		return keyError("not valid UTF-8")
	case strings.ContainsRune(key, '\\'):
		return keyError("contains a backslash")
	case strings.HasPrefix(key, "/"):
		return keyError("absolute")
	case !prefix && strings.HasSuffix(key, "/"):
		return keyError("ends with a slash")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return keyError("contains a NUL or control character")
		}
	}
	segs := strings.Split(key, "/")
	if prefix && segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
	}
	for _, s := range segs {
		switch s {
		case "":
			return keyError("empty path segment")
		case ".", "..":
			return keyError("contains a . or .. segment")
		}
	}
	return nil
}
