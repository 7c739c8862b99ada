package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sluice-dev/sluice/objstore"
)

const getSynopsis = `s3://bucket/key|file:///abs/dir/key [-o file|-] [--force]

Downloads a stored object. The bytes go to <file>.part first; if a
previous download was interrupted, it resumes from the end of <file>.part
with a ranged GET (when the object's ETag and size are unchanged). When
the object carries a sha256 in its metadata (sluice dump --to stores one)
the download is verified against it before <file>.part is renamed to
<file>. Without -o the file is named after the key, in the current
directory.`

// partState is kept beside <file>.part so a resume only continues the
// same object.
type partState struct {
	ETag string `json:"etag"`
	Size int64  `json:"size"`
}

func runGet(ctx context.Context, e *env, args []string) error {
	fl := newFlagSet(e, "get", getSynopsis)
	out := fl.String("o", "", "output file, or - for stdout (default: the key's base name)")
	force := fl.Bool("force", false, "replace an existing output file")
	progress := fl.String("progress", "auto", "progress bar on stderr: auto, always or never")
	s3f := registerS3Flags(fl)
	newLogger := logFlags(fl, "warn")
	// Accept the URL before or after the flags.
	var rest []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		rest, args = args[:1], args[1:]
	}
	if err := parseFlags(e, fl, args); err != nil {
		return err
	}
	rest = append(rest, fl.Args()...)
	if len(rest) != 1 {
		return usagef("want exactly one URL (s3://bucket/key or file:///abs/dir/key), got %d arguments", len(rest))
	}
	switch *progress {
	case "auto", "always", "never":
	default:
		return usagef("bad --progress %q (want auto, always or never)", *progress)
	}
	log, err := newLogger(e)
	if err != nil {
		return err
	}
	u, err := parseStoreURL(rest[0])
	if err != nil {
		return usagef("%v", err)
	}
	if *out == "" {
		*out = path.Base(u.Key)
	}
	store, err := openStore(ctx, e, log, s3f, u)
	if err != nil {
		return err
	}
	info, err := store.Head(ctx, u.Key)
	if err != nil {
		if errors.Is(err, objstore.ErrNotExist) {
			return fmt.Errorf("%s does not exist", u)
		}
		return fmt.Errorf("head %s: %w", u, err)
	}
	want := info.Metadata["sha256"]

	if *out == "-" {
		if e.stdoutTTY {
			return usagef("refusing to write a download to a terminal; use -o file or a pipe")
		}
		rc, _, err := store.Get(ctx, u.Key, 0, -1)
		if err != nil {
			return fmt.Errorf("get %s: %w", u, err)
		}
		defer rc.Close()
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(e.stdout, h), rc)
		if err != nil {
			return fmt.Errorf("download %s: %w", u, err)
		}
		return finishGet(e, u, n, info.Size, hex.EncodeToString(h.Sum(nil)), want, "stdout")
	}

	if _, err := os.Stat(*out); err == nil && !*force {
		return fmt.Errorf("%s already exists; use --force to replace it", *out)
	}
	if di, err := os.Stat(filepath.Dir(*out)); err != nil || !di.IsDir() {
		return fmt.Errorf("cannot write %s: directory %s does not exist", *out, filepath.Dir(*out))
	}
	part, stateFile := *out+".part", *out+".part.json"
	cur := partState{ETag: info.ETag, Size: info.Size}
	f, h, offset, err := openPart(log, part, stateFile, cur)
	if err != nil {
		return err
	}
	defer f.Close()

	var bar *progressbar.ProgressBar
	if *progress == "always" || (*progress == "auto" && e.stderrTTY) {
		bar = progressbar.NewOptions64(info.Size,
			progressbar.OptionSetWriter(e.stderr), progressbar.OptionShowBytes(true),
			progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(150*time.Millisecond), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription("get"))
		bar.Set64(offset)
	}
	n := offset
	if offset < info.Size {
		rc, _, err := store.Get(ctx, u.Key, offset, -1)
		if err != nil {
			return fmt.Errorf("get %s from byte %d: %w", u, offset, err)
		}
		defer rc.Close()
		var w io.Writer = io.MultiWriter(f, h)
		if bar != nil {
			w = io.MultiWriter(w, bar)
		}
		copied, err := io.Copy(w, rc)
		n += copied
		if err != nil {
			f.Sync()
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted after %d of %d bytes; run again to resume from %s", n, info.Size, part)
			}
			return fmt.Errorf("download %s: %w (%d of %d bytes kept in %s; run again to resume)", u, err, n, info.Size, part)
		}
	}
	if bar != nil {
		bar.Finish()
	}
	if n != info.Size {
		return fmt.Errorf("download %s: got %d bytes, the object has %d (kept in %s; run again to resume)", u, n, info.Size, part)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && !strings.EqualFold(sum, want) {
		f.Close()
		os.Remove(part)
		os.Remove(stateFile)
		return fmt.Errorf("checksum mismatch for %s: sha256 %s, metadata says %s; the download was discarded", u, sum, want)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", part, err)
	}
	if err := os.Rename(part, *out); err != nil {
		return fmt.Errorf("rename %s: %w", part, err)
	}
	os.Remove(stateFile)
	if err := syncDir(filepath.Dir(*out)); err != nil {
		return err
	}
	return finishGet(e, u, n, info.Size, sum, want, *out)
}

// openPart opens (or starts) <out>.part for appending and returns a hash
// already fed with the bytes it holds and the offset to resume from. A
// part belonging to another version of the object is started over.
func openPart(log *slog.Logger, part, stateFile string, cur partState) (*os.File, hash.Hash, int64, error) {
	h := sha256.New()
	var prev partState
	resume := false
	if b, err := os.ReadFile(stateFile); err == nil && json.Unmarshal(b, &prev) == nil && prev == cur {
		resume = true
	}
	if resume {
		f, err := os.OpenFile(part, os.O_RDWR, 0)
		if err == nil {
			n, err := io.Copy(h, f)
			if err == nil && n <= cur.Size {
				log.Info("get: resuming", "file", part, "offset", n)
				return f, h, n, nil
			}
			f.Close()
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, 0, fmt.Errorf("open %s: %w", part, err)
		}
		h.Reset()
	}
	b, _ := json.Marshal(cur)
	if err := os.WriteFile(stateFile, b, 0o644); err != nil {
		return nil, nil, 0, fmt.Errorf("cannot write %s: %w", stateFile, err)
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("cannot write %s: %w", part, err)
	}
	return f, h, 0, nil
}

func finishGet(e *env, u storeURL, n, size int64, sum, want, dest string) error {
	if n != size {
		return fmt.Errorf("download %s: got %d bytes, the object has %d", u, n, size)
	}
	if want != "" && !strings.EqualFold(sum, want) {
		return fmt.Errorf("checksum mismatch for %s: sha256 %s, metadata says %s", u, sum, want)
	}
	fmt.Fprintf(e.stderr, "sluice: get complete: bytes=%d sha256=%s verified=%t output=%s\n", n, sum, want != "", dest)
	return nil
}
