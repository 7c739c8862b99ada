package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/verify"
)

// writeDumpManifest stores <key>.manifest.json beside a --to object, or
// writes <file>.manifest.json beside an -o file (atomically), once the
// dump itself is committed.
func writeDumpManifest(ctx context.Context, out sink, a *dumpArgs, src *dump.Source, cur dump.Cursor, pipe *pipeline) error {
	d, ok := src.Digests(cur)
	if !ok {
		return fmt.Errorf("dump has no digests; manifest not written")
	}
	m := verify.NewManifest(a.opts, a.compress, src.Plan(), d)
	m.Sluice = version
	m.Database.Name = filepath.Base(a.db)
	m.Object = verify.Object{Key: filepath.Base(a.out), Size: pipe.count.Load(), SHA256: pipe.sum()}
	if ss, ok := out.(*storeSink); ok {
		m.Object.Key = ss.u.Key
		body := m.Marshal()
		key := verify.ManifestKey(ss.u.Key)
		if _, err := ss.store.Put(ctx, key, bytes.NewReader(body), int64(len(body)),
			objstore.PutOptions{ContentType: "application/json"}); err != nil {
			return fmt.Errorf("store manifest %s: %w", key, err)
		}
		return nil
	}
	body := m.Marshal()
	path := a.out + verify.ManifestSuffix
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write manifest: %w", err)
	}
	return syncDir(filepath.Dir(path))
}
