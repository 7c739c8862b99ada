package dump

import (
	"fmt"

	"github.com/sluice-dev/sluice"
)

// newFormatter returns the formatter for opts.Format. The switch is the
// one place that knows every format; there is no registry.
func newFormatter(opts Options) (formatter, error) {
	if opts.DigestOnly {
		return nopFormatter{}, nil
	}
	switch opts.Format {
	case sluice.FormatSQL, "":
		return &sqlFormatter{dataOnly: opts.DataOnly}, nil
	case sluice.FormatCSV:
		return &csvFormatter{plain: opts.PlainCSV}, nil
	case sluice.FormatJSON:
		return &jsonFormatter{layout: jsonKeyed}, nil
	case sluice.FormatJSONTyped:
		return &jsonFormatter{layout: jsonTyped}, nil
	case sluice.FormatNDJSON:
		return &jsonFormatter{layout: jsonLines}, nil
	}
	return nil, fmt.Errorf("dump: %w: unknown format %q", sluice.ErrInvalid, opts.Format)
}
