package main

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// storeURL is a parsed destination or source URL:
// s3://bucket/key or file:///abs/dir/key.
type storeURL struct {
	Scheme string // "s3" or "file"
	Bucket string // s3 only
	Root   string // file only: the directory the store is rooted at
	Key    string // object key inside the bucket or root
	raw    string
}

func (u storeURL) String() string { return u.raw }

// parseStoreURL parses raw, rejecting anything that cannot name an object
// unambiguously, with a message that says what is wrong.
func parseStoreURL(raw string) (storeURL, error) {
	bad := func(why string) (storeURL, error) {
		return storeURL{}, fmt.Errorf("malformed URL %q: %s (want s3://bucket/key or file:///abs/dir/key)", raw, why)
	}
	if raw == "" {
		return bad("empty")
	}
	if strings.ContainsAny(raw, "\x00\\") {
		return bad("contains a NUL byte or backslash")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad(err.Error())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return bad("query strings and fragments are not supported")
	}
	switch u.Scheme {
	case "s3":
		if u.User != nil {
			return bad("credentials do not belong in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
		if u.Host == "" {
			return bad("missing bucket")
		}
		if u.Port() != "" {
			return bad("a bucket name has no port; use --s3-endpoint for the server")
		}
		key := strings.TrimPrefix(u.Path, "/")
		if key == "" || strings.HasSuffix(key, "/") {
			return bad("missing object key after the bucket")
		}
		if err := checkKey(key); err != nil {
			return bad(err.Error())
		}
		return storeURL{Scheme: "s3", Bucket: u.Host, Key: key, raw: raw}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad("file URLs have no host; use three slashes: file:///abs/dir/key")
		}
		if u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
			return bad("the path must be absolute: file:///abs/dir/key")
		}
		if strings.HasSuffix(u.Path, "/") {
			return bad("missing file name after the directory")
		}
		clean := path.Clean(u.Path)
		if clean != u.Path {
			return bad("the path is not clean (no '.', '..' or '//')")
		}
		dir, key := path.Split(clean)
		if dir == "/" {
			return bad("a store directory is needed: file:///abs/dir/key")
		}
		return storeURL{Scheme: "file", Root: filepath.FromSlash(strings.TrimSuffix(dir, "/")), Key: key, raw: raw}, nil
	case "":
		return bad("missing scheme")
	default:
		return bad(fmt.Sprintf("unsupported scheme %q", u.Scheme))
	}
}

// checkKey rejects keys that could escape a prefix or confuse a store.
func checkKey(key string) error {
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("empty path segment in key %q", key)
		case ".", "..":
			return fmt.Errorf("'.' or '..' segment in key %q", key)
		}
	}
	return nil
}
