package file

import (
	"fmt"

	"github.com/sluice-dev/sluice/objstore"
)

// reserved is the directory under the root that holds the store's own
// files (uploads, metadata, temporary files); objstore.ValidateKey keeps
// every key out of it.
const reserved = objstore.Reserved

// checkKey applies objstore.ValidateKey. It runs before any file is
// touched.
func checkKey(key string) error {
	if err := objstore.ValidateKey(key); err != nil {
		return fmt.Errorf("file: %w", err)
	}
	return nil
}

// checkPrefix is checkKey for List and ListUploads prefixes.
func checkPrefix(prefix string) error {
	if err := objstore.ValidatePrefix(prefix); err != nil {
		return fmt.Errorf("file: %w", err)
	}
	return nil
}
