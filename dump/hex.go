package dump

import (
	"encoding/binary"
	"slices"
)

const hexDigits = "0123456789abcdef"

// hexPairs[c] holds the two lower-case hex digits of c, first digit in
// the low byte, so one 16-bit store writes both.
var hexPairs = func() (t [256]uint16) {
	for i := range t {
		t[i] = uint16(hexDigits[i>>4]) | uint16(hexDigits[i&15])<<8
	}
	return t
}()

// appendHex appends v in lower-case hex, as encoding/hex does, at about
// five times its speed: BLOBs are the bulk of many dumps. Sixteen bytes
// per step, four table lookups per 64-bit store, measured fastest (thread
// CPU: 4.5 GB/s, against 2.6 for one lookup and store per four bytes, 1.7
// for 64-bit arithmetic without a table, 0.8 for encoding/hex).
func appendHex(b, v []byte) []byte {
	b = slices.Grow(b, 2*len(v))
	n := len(b)
	b = b[:n+2*len(v)]
	dst := b[n:]
	p := &hexPairs
	for len(v) >= 16 && len(dst) >= 32 {
		binary.LittleEndian.PutUint64(dst, uint64(p[v[0]])|uint64(p[v[1]])<<16|uint64(p[v[2]])<<32|uint64(p[v[3]])<<48)
		binary.LittleEndian.PutUint64(dst[8:], uint64(p[v[4]])|uint64(p[v[5]])<<16|uint64(p[v[6]])<<32|uint64(p[v[7]])<<48)
		binary.LittleEndian.PutUint64(dst[16:], uint64(p[v[8]])|uint64(p[v[9]])<<16|uint64(p[v[10]])<<32|uint64(p[v[11]])<<48)
		binary.LittleEndian.PutUint64(dst[24:], uint64(p[v[12]])|uint64(p[v[13]])<<16|uint64(p[v[14]])<<32|uint64(p[v[15]])<<48)
		v, dst = v[16:], dst[32:]
	}
	for i, c := range v {
		binary.LittleEndian.PutUint16(dst[2*i:], p[c])
	}
	return b
}
