package file

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/objstore"
)

// reserved is the directory under the root that holds the store's own
// files (uploads, metadata, temporary files); no key may enter it.
const reserved = ".sluice"

// maxKeyLen is S3's limit on key length in bytes.
const maxKeyLen = 1024

// checkKey rejects keys that could not name a file safely inside the root:
// empty, too long, invalid UTF-8, NUL or other control characters,
// backslashes, a leading or trailing slash, empty, "." or ".." segments,
// and the reserved directory. It runs before any file is touched.
func checkKey(key string) error {
	if err := checkPath(key, false); err != nil {
		return fmt.Errorf("file: key %q: %w: %s", key, objstore.ErrInvalidKey, err)
	}
	return nil
}

// checkPrefix is checkKey for List and ListUploads prefixes, which may be
// empty or end with a slash.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkPath(prefix, true); err != nil {
		return fmt.Errorf("file: prefix %q: %w: %s", prefix, objstore.ErrInvalidKey, err)
	}
	return nil
}

type keyError string

func (e keyError) Error() string { return string(e) }

func checkPath(key string, prefix bool) error {
	switch {
	case key == "":
		return keyError("empty")
	case len(key) > maxKeyLen:
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
	for i, s := range segs {
		switch {
		case s == "":
			return keyError("empty path segment")
		case s == "." || s == "..":
			return keyError("contains a . or .. segment")
		case i == 0 && s == reserved:
			return keyError("uses the reserved directory " + reserved)
		}
	}
	return nil
}
