package objstore

import "fmt"

// Headroom is the factor by which ChoosePartSize inflates the caller's
// size estimate, so that an estimate that is somewhat low still fits in
// MaxParts parts without outgrowing.
const Headroom = 1.5

// ChoosePartSize returns the part size for a stream of about expected
// bytes (0 or less: unknown) under limits l: the smallest size, rounded up
// to a whole MiB, that fits expected×Headroom in l.MaxParts parts, and
// never below l.MinPartSize (nor 8 MiB when the minimum is S3's 5 MiB,
// which costs little memory and halves the request count) nor above
// l.MaxPartSize.
func ChoosePartSize(expected int64, l Limits) int64 {
	floor := l.MinPartSize
	if floor == MinPartSize {
		floor = 8 * MiB
	}
	size := floor
	if expected > 0 && l.MaxParts > 0 {
		want := int64(float64(expected)*Headroom) / int64(l.MaxParts)
		if want > size {
			size = (want + MiB - 1) / MiB * MiB
		}
	}
	if l.MaxPartSize > 0 && size > l.MaxPartSize {
		size = l.MaxPartSize
	}
	return size
}

// checkPartSize validates an explicit part size against the limits.
func checkPartSize(size int64, l Limits) error {
	if size < l.MinPartSize || size > l.MaxPartSize {
		return fmt.Errorf("objstore: part size %d outside [%d, %d]", size, l.MinPartSize, l.MaxPartSize)
	}
	return nil
}

// growthFactor returns m such that a full upload of maxParts parts of
// size can be re-expressed as maxParts/m parts of m×size (so m divides
// maxParts), with m×size within maxPartSize: the largest such m up to 10,
// else the smallest above 10. It returns 0 when no m exists, i.e. the
// stream has reached the largest object the limits allow.
func growthFactor(maxParts int, size, maxPartSize int64) int {
	best := 0
	for m := 2; m <= maxParts; m++ {
		if maxParts%m != 0 || int64(m)*size > maxPartSize {
			continue
		}
		if m <= 10 {
			best = m
			continue
		}
		if best == 0 {
			best = m
		}
		break
	}
	return best
}
