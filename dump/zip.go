package dump

// A minimal streaming, resumable ZIP writer for the CSV format.
//
// archive/zip cannot be used: it keeps its central directory in memory
// behind an unexported API and cannot continue an archive in a new
// process. This writer appends to the caller's buffer, stores entries
// uncompressed (method 0; compression is applied to the whole stream by
// the caller), sets the data-descriptor flag so that each entry's CRC-32
// and sizes follow its data, and keeps everything it needs to continue
// (the central directory so far, the running CRC and size of the open
// entry, the byte offset) in a compact state that round-trips through
// zipWriter.appendState / zipWriter.restore.
//
// Every entry is written as ZIP64 in its local header (a zip64 extra field
// with zero sizes) and its data descriptor (8-byte sizes), because a
// stream cannot know in advance whether an entry will pass 4 GiB, and
// APPNOTE 4.3.9 ties the descriptor's size width to the presence of that
// extra field. The central directory uses ZIP64 fields only where a value
// does not fit, and the ZIP64 end records are written only when the entry
// count, directory size or directory offset need them.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	zipLocalSig      = 0x04034b50
	zipCentralSig    = 0x02014b50
	zipDescriptorSig = 0x08074b50
	zipEnd64Sig      = 0x06064b50
	zipEnd64LocSig   = 0x07064b50
	zipEndSig        = 0x06054b50

	zipVersion64   = 45              // version needed: ZIP64
	zipMadeBy      = 3<<8 | 45       // Unix, spec 4.5
	zipFlags       = 0x0008 | 0x0800 // data descriptor, UTF-8 names
	zipDOSDate     = 1<<5 | 1        // 1980-01-01: fixed, so that output is reproducible
	zipDOSTime     = 0               // 00:00:00
	zipExternalMod = 0o100644 << 16  // regular file, rw-r--r--

	zipMax16 = 0xffff
	zipMax32 = 0xffffffff

	// zipMaxBase bounds the escaped part of an entry name, so that with
	// a "~N" suffix and ".csv" it fits the 255-byte file-name limit of
	// common file systems.
	zipMaxBase = 200
)

// zipEntry is one entry's central-directory record.
type zipEntry struct {
	name   string // entry name (escaped, unique)
	table  string // the table's exact name, raw bytes: the entry's comment
	offset int64  // offset of its local header
	crc    uint32
	size   int64
}

// zipWriter writes one ZIP archive as a sequence of appends.
type zipWriter struct {
	off     int64      // bytes of archive appended so far
	entries []zipEntry // closed entries
	cur     zipEntry   // the open entry, when open
	open    bool
	used    map[string]struct{} // folded names in use, derived from entries
}

// beginEntry closes any open entry and writes the local header of a new
// one for table.
func (z *zipWriter) beginEntry(b *[]byte, table string) {
	if z.open {
		z.endEntry(b)
	}
	name := z.uniqueName(table)
	start := len(*b)
	p := *b
	p = binary.LittleEndian.AppendUint32(p, zipLocalSig)
	p = binary.LittleEndian.AppendUint16(p, zipVersion64)
	p = binary.LittleEndian.AppendUint16(p, zipFlags)
	p = binary.LittleEndian.AppendUint16(p, 0) // stored
	p = binary.LittleEndian.AppendUint16(p, zipDOSTime)
	p = binary.LittleEndian.AppendUint16(p, zipDOSDate)
	p = binary.LittleEndian.AppendUint32(p, 0) // crc: in the descriptor
	p = binary.LittleEndian.AppendUint32(p, 0) // sizes: in the descriptor
	p = binary.LittleEndian.AppendUint32(p, 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(len(name)))
	p = binary.LittleEndian.AppendUint16(p, 20) // zip64 extra
	p = append(p, name...)
	p = binary.LittleEndian.AppendUint16(p, 0x0001)
	p = binary.LittleEndian.AppendUint16(p, 16)
	p = binary.LittleEndian.AppendUint64(p, 0)
	p = binary.LittleEndian.AppendUint64(p, 0)
	*b = p
	z.cur = zipEntry{name: name, table: table, offset: z.off}
	z.open = true
	z.off += int64(len(*b) - start)
}

// data accounts for entry bytes the caller has already appended.
func (z *zipWriter) data(p []byte) {
	z.cur.crc = crc32.Update(z.cur.crc, crc32.IEEETable, p)
	z.cur.size += int64(len(p))
	z.off += int64(len(p))
}

// endEntry writes the open entry's data descriptor and files it in the
// central directory.
func (z *zipWriter) endEntry(b *[]byte) {
	if !z.open {
		return
	}
	start := len(*b)
	p := *b
	p = binary.LittleEndian.AppendUint32(p, zipDescriptorSig)
	p = binary.LittleEndian.AppendUint32(p, z.cur.crc)
	p = binary.LittleEndian.AppendUint64(p, uint64(z.cur.size))
	p = binary.LittleEndian.AppendUint64(p, uint64(z.cur.size))
	*b = p
	z.off += int64(len(*b) - start)
	z.entries = append(z.entries, z.cur)
	z.cur = zipEntry{}
	z.open = false
}

// finish closes any open entry and writes the central directory and the
// end records.
func (z *zipWriter) finish(b *[]byte) {
	z.endEntry(b)
	start := len(*b)
	cdOff := z.off
	p := *b
	for i := range z.entries {
		p = appendCentral(p, &z.entries[i])
	}
	cdSize := int64(len(p) - start)
	n := len(z.entries)
	if n >= zipMax16 || cdSize >= zipMax32 || cdOff >= zipMax32 {
		end64 := cdOff + cdSize
		p = binary.LittleEndian.AppendUint32(p, zipEnd64Sig)
		p = binary.LittleEndian.AppendUint64(p, 44) // size of the rest of this record
		p = binary.LittleEndian.AppendUint16(p, zipMadeBy)
		p = binary.LittleEndian.AppendUint16(p, zipVersion64)
		p = binary.LittleEndian.AppendUint32(p, 0) // this disk
		p = binary.LittleEndian.AppendUint32(p, 0) // disk with the directory
		p = binary.LittleEndian.AppendUint64(p, uint64(n))
		p = binary.LittleEndian.AppendUint64(p, uint64(n))
		p = binary.LittleEndian.AppendUint64(p, uint64(cdSize))
		p = binary.LittleEndian.AppendUint64(p, uint64(cdOff))
		p = binary.LittleEndian.AppendUint32(p, zipEnd64LocSig)
		p = binary.LittleEndian.AppendUint32(p, 0)
		p = binary.LittleEndian.AppendUint64(p, uint64(end64))
		p = binary.LittleEndian.AppendUint32(p, 1) // total disks
	}
	p = binary.LittleEndian.AppendUint32(p, zipEndSig)
	p = binary.LittleEndian.AppendUint16(p, 0)
	p = binary.LittleEndian.AppendUint16(p, 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(min(n, zipMax16)))
	p = binary.LittleEndian.AppendUint16(p, uint16(min(n, zipMax16)))
	p = binary.LittleEndian.AppendUint32(p, uint32(min(cdSize, zipMax32)))
	p = binary.LittleEndian.AppendUint32(p, uint32(min(cdOff, zipMax32)))
	p = binary.LittleEndian.AppendUint16(p, 0) // comment length
	*b = p
	z.off += int64(len(*b) - start)
}

func appendCentral(p []byte, e *zipEntry) []byte {
	comment := e.table
	if len(comment) > zipMax16 {
		comment = "" // does not fit the field; the entry name still identifies the table
	}
	var extra []uint64 // ZIP64 fields, in APPNOTE order
	size32, off32 := uint32(e.size), uint32(e.offset)
	if e.size >= zipMax32 {
		size32 = zipMax32
		extra = append(extra, uint64(e.size), uint64(e.size)) // uncompressed, compressed
	}
	if e.offset >= zipMax32 {
		off32 = zipMax32
		extra = append(extra, uint64(e.offset))
	}
	extraLen := 0
	if len(extra) > 0 {
		extraLen = 4 + 8*len(extra)
	}
	p = binary.LittleEndian.AppendUint32(p, zipCentralSig)
	p = binary.LittleEndian.AppendUint16(p, zipMadeBy)
	p = binary.LittleEndian.AppendUint16(p, zipVersion64)
	p = binary.LittleEndian.AppendUint16(p, zipFlags)
	p = binary.LittleEndian.AppendUint16(p, 0) // stored
	p = binary.LittleEndian.AppendUint16(p, zipDOSTime)
	p = binary.LittleEndian.AppendUint16(p, zipDOSDate)
	p = binary.LittleEndian.AppendUint32(p, e.crc)
	p = binary.LittleEndian.AppendUint32(p, size32)
	p = binary.LittleEndian.AppendUint32(p, size32)
	p = binary.LittleEndian.AppendUint16(p, uint16(len(e.name)))
	p = binary.LittleEndian.AppendUint16(p, uint16(extraLen))
	p = binary.LittleEndian.AppendUint16(p, uint16(len(comment)))
	p = binary.LittleEndian.AppendUint16(p, 0) // disk start
	p = binary.LittleEndian.AppendUint16(p, 0) // internal attributes
	p = binary.LittleEndian.AppendUint32(p, zipExternalMod)
	p = binary.LittleEndian.AppendUint32(p, off32)
	p = append(p, e.name...)
	if len(extra) > 0 {
		p = binary.LittleEndian.AppendUint16(p, 0x0001)
		p = binary.LittleEndian.AppendUint16(p, uint16(8*len(extra)))
		for _, v := range extra {
			p = binary.LittleEndian.AppendUint64(p, v)
		}
	}
	return append(p, comment...)
}

// uniqueName returns the entry name for table: its escaped form plus
// ".csv", with a "~N" suffix if the name, compared case-insensitively,
// is already taken. Because '~' and '%' are always escaped, a suffix can
// never be confused with part of a table name.
func (z *zipWriter) uniqueName(table string) string {
	if z.used == nil {
		z.used = make(map[string]struct{}, len(z.entries)+1)
		for i := range z.entries {
			z.used[foldName(z.entries[i].name)] = struct{}{}
		}
	}
	base := escapeEntryName(table)
	name := base + ".csv"
	for i := 2; ; i++ {
		if _, taken := z.used[foldName(name)]; !taken {
			break
		}
		name = base + "~" + strconv.Itoa(i) + ".csv"
	}
	z.used[foldName(name)] = struct{}{}
	return name
}

// foldName is the key under which names collide on case-insensitive
// file systems.
func foldName(s string) string { return strings.ToLower(strings.ToUpper(s)) }

// escapeEntryName makes a table name safe as a ZIP entry name (see
// docs/formats-csv-json.md): it percent-encodes, as %XX with upper-case
// hex, every byte that is
//   - '%' (so that the encoding is reversible) or '~' (reserved for the
//     uniqueness suffix);
//   - a path separator or a character Windows forbids: / \ : * ? " < > |;
//   - a control byte (0x00-0x1F, 0x7F) or part of invalid UTF-8;
//   - a '.' that starts the name, ends it, or follows another '.', so
//     that no entry name starts with '.' or contains "..";
//
// and truncates the result to zipMaxBase bytes at a character boundary
// (dropping a '.' left at the end). The empty name is written "%_empty_",
// which no encoded name can be, since every '%' it writes is followed by
// two hex digits.
func escapeEntryName(s string) string {
	if s == "" {
		return "%_empty_"
	}
	var b []byte
	const hexd = "0123456789ABCDEF"
	for i := 0; i < len(s); {
		c := s[i]
		esc := false
		size := 1
		switch {
		case c < 0x20 || c == 0x7f:
			esc = true
		case c == '%' || c == '~' || c == '/' || c == '\\' || c == ':' || c == '*' ||
			c == '?' || c == '"' || c == '<' || c == '>' || c == '|':
			esc = true
		case c == '.':
			esc = i == 0 || i == len(s)-1 || s[i-1] == '.'
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				esc = true
			} else {
				size = n
			}
		}
		var piece []byte
		if esc {
			piece = []byte{'%', hexd[c>>4], hexd[c&15]}
		} else {
			piece = []byte(s[i : i+size])
		}
		if len(b)+len(piece) > zipMaxBase {
			break
		}
		b = append(b, piece...)
		i += size
	}
	if len(b) > 1 && b[len(b)-1] == '.' { // only possible after truncation
		b = b[:len(b)-1]
	}
	return string(b)
}

// Zip state encoding, version 1, all integers as unsigned varints:
//
//	version(=1) off nEntries entry* open(0|1) [entry]
//	entry = len(name) name len(table) table offset crc size
const zipStateVersion = 1

func (z *zipWriter) appendState(p []byte) []byte {
	p = binary.AppendUvarint(p, zipStateVersion)
	p = binary.AppendUvarint(p, uint64(z.off))
	p = binary.AppendUvarint(p, uint64(len(z.entries)))
	for i := range z.entries {
		p = appendZipEntryState(p, &z.entries[i])
	}
	if z.open {
		p = append(p, 1)
		p = appendZipEntryState(p, &z.cur)
	} else {
		p = append(p, 0)
	}
	return p
}

func appendZipEntryState(p []byte, e *zipEntry) []byte {
	p = binary.AppendUvarint(p, uint64(len(e.name)))
	p = append(p, e.name...)
	p = binary.AppendUvarint(p, uint64(len(e.table)))
	p = append(p, e.table...)
	p = binary.AppendUvarint(p, uint64(e.offset))
	p = binary.AppendUvarint(p, uint64(e.crc))
	p = binary.AppendUvarint(p, uint64(e.size))
	return p
}

var errFormatterState = errors.New("dump: malformed formatter state")

// restore replaces z with the state in p and returns the bytes after it.
func (z *zipWriter) restore(p []byte) ([]byte, error) {
	d := stateDecoder{p: p}
	if v := d.uvarint(); v != zipStateVersion {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("zip: state version %d, want %d", v, zipStateVersion)
	}
	var nz zipWriter
	nz.off = d.int64()
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.p)) { // each entry takes several bytes
		d.err = errFormatterState
	}
	if d.err == nil {
		nz.entries = make([]zipEntry, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		nz.entries = append(nz.entries, d.zipEntry())
	}
	switch d.byte() {
	case 0:
	case 1:
		nz.cur = d.zipEntry()
		nz.open = true
	default:
		d.fail()
	}
	if d.err != nil {
		return nil, d.err
	}
	// Check that the directory is consistent, so that a corrupt state is
	// refused here rather than producing a broken archive later.
	var end int64
	for _, e := range nz.entries {
		if e.offset < end || e.size < 0 || e.name == "" {
			return nil, errFormatterState
		}
		end = e.offset + e.size
	}
	if nz.open && (nz.cur.offset < end || nz.cur.name == "" || nz.cur.offset+nz.cur.size > nz.off) {
		return nil, errFormatterState
	}
	if end > nz.off {
		return nil, errFormatterState
	}
	*z = nz
	return d.p, nil
}

// stateDecoder reads the varint encoding of formatter states; the first
// error sticks.
type stateDecoder struct {
	p   []byte
	err error
}

func (d *stateDecoder) fail() {
	if d.err == nil {
		d.err = errFormatterState
	}
}

func (d *stateDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *stateDecoder) int64() int64 {
	v := d.uvarint()
	if v > 1<<62 {
		d.fail()
		return 0
	}
	return int64(v)
}

func (d *stateDecoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.p) == 0 {
		d.fail()
		return 0
	}
	c := d.p[0]
	d.p = d.p[1:]
	return c
}

func (d *stateDecoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.p)) {
		d.fail()
		return ""
	}
	s := string(d.p[:n])
	d.p = d.p[n:]
	return s
}

func (d *stateDecoder) zipEntry() zipEntry {
	var e zipEntry
	e.name = d.str()
	e.table = d.str()
	e.offset = d.int64()
	crc := d.uvarint()
	if crc > zipMax32 {
		d.fail()
	}
	e.crc = uint32(crc)
	e.size = d.int64()
	if len(e.name) > zipMax16 {
		d.fail()
	}
	return e
}
