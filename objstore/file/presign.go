package file

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/objstore"
)

// Errors of signed-URL verification.
var (
	ErrExpired      = errors.New("file: signed URL expired")
	ErrBadSignature = errors.New("file: bad signature")
)

// MaxPresignExpiry is the longest validity PresignGet grants (as S3 SigV4).
const MaxPresignExpiry = 7 * 24 * time.Hour

// FilesPath is the URL path under which the signed URLs of PresignGet
// point; Handler serves it.
const FilesPath = "/files/"

// PresignGet returns <BaseURL>/files/<escaped key>?expires=<unix>&v=<version>&sig=<hex>,
// where sig is HMAC-SHA256 over the key, the expiry and the object's
// version (see Version) with the configured signing key: the URL serves
// only the object that was at the key when it was signed, never one
// written there later. The file store has no server of its own: sluice serves the
// URL (see Handler and Verify). expiry <= 0 means one hour.
func (s *Store) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if len(s.opts.SigningKey) == 0 || s.opts.BaseURL == "" {
		return "", errors.New("file: presign: no signing key or base URL configured")
	}
	if expiry <= 0 {
		expiry = time.Hour
	}
	if expiry > MaxPresignExpiry {
		return "", fmt.Errorf("file: presign %s: expiry %s exceeds %s", key, expiry, MaxPresignExpiry)
	}
	info, err := s.Head(ctx, key)
	if err != nil {
		return "", err
	}
	exp := strconv.FormatInt(s.now().Add(expiry).Unix(), 10)
	v := Version(info)
	q := url.Values{"expires": {exp}, "v": {v}, "sig": {s.sign(key, exp, v)}}
	return strings.TrimSuffix(s.opts.BaseURL, "/") + FilesPath + escapeKey(key) + "?" + q.Encode(), nil
}

func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}

// Version names one write of an object: its ETag (the content) and its
// modification time (the write), so that an object deleted and written
// again at the same key is a new version even with the same bytes.
func Version(info objstore.ObjectInfo) string {
	h := sha256.Sum256([]byte(info.ETag + "\x00" + strconv.FormatInt(info.LastModified.UnixNano(), 10)))
	return hex.EncodeToString(h[:8])
}

func (s *Store) sign(key, expires, version string) string {
	m := hmac.New(sha256.New, s.opts.SigningKey)
	m.Write([]byte(key))
	m.Write([]byte{0})
	m.Write([]byte(expires))
	m.Write([]byte{0})
	m.Write([]byte(version))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyQuery checks the query of a signed URL for key (unescaped) now,
// as Verify, and returns the object version the URL was signed for; the
// caller serves the object only if it still has that version.
func (s *Store) VerifyQuery(key string, q url.Values) (version string, err error) {
	v := q.Get("v")
	return v, s.Verify(key, q.Get("expires"), v, q.Get("sig"), s.now())
}

// Verify checks a signed URL's parameters for key (unescaped) at time now:
// ErrBadSignature if sig does not match, ErrExpired if expires is past.
func (s *Store) Verify(key, expires, version, sig string, now time.Time) error {
	if len(s.opts.SigningKey) == 0 {
		return fmt.Errorf("file: verify: no signing key configured: %w", ErrBadSignature)
	}
	want := s.sign(key, expires, version)
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(sig))) {
		return ErrBadSignature
	}
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if now.Unix() > exp {
		return ErrExpired
	}
	return nil
}

// Handler serves the signed URLs of PresignGet: GET (and HEAD) on
// /files/{key...}, with Range support. Mount it at the server's root, or
// behind http.StripPrefix of whatever precedes /files/ in BaseURL.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+FilesPath+"{key...}", s.serveFile)
	return mux
}

func (s *Store) serveFile(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	if err := checkKey(key); err != nil {
		http.Error(w, "invalid key", http.StatusBadRequest)
		return
	}
	version, err := s.VerifyQuery(key, q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	f, info, err := s.open(key)
	if err == nil && Version(info) != version {
		f.Close()
		err = fmt.Errorf("file: %s was replaced after the URL was signed: %w", key, objstore.ErrNotExist)
	}
	if errors.Is(err, objstore.ErrNotExist) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if err != nil {
		s.log.Error("serve signed url", "key", key, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if info.ContentType != "" {
		w.Header().Set("Content-Type", info.ContentType)
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	w.Header().Set("ETag", `"`+info.ETag+`"`)
	http.ServeContent(w, r, "", info.LastModified, f)
}
