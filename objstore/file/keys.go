package file

import (
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice/objstore"
)

// reserved is the directory under the root that holds the store's own
// files (uploads, metadata, temporary files); no key may enter it.
const reserved = ".sluice"

// checkKey applies objstore.ValidateKey and keeps keys out of the reserved
// directory. It runs before any file is touched.
func checkKey(key string) error {
	if err := objstore.ValidateKey(key); err != nil {
		return fmt.Errorf("file: %w", err)
	}
	if key == reserved || strings.HasPrefix(key, reserved+"/") {
		return fmt.Errorf("file: key %q: %w: uses the reserved directory %s", key, objstore.ErrInvalidKey, reserved)
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
