package dump

import (
	"math"
	"strconv"

	"github.com/sluice-dev/sluice/internal/sqlreal"
)

// realWriter appends REAL literals that the sqlite3 CLI (3.40, the version
// the acceptance tests reload with) parses back into exactly the same
// float64 bits.
//
// The shortest decimal that Go prints (strconv 'g', -1) round-trips through
// a correctly rounded parser, but SQLite 3.40's sqlite3AtoF is not one: it
// accumulates the digits in an int64 and scales by powers of ten in x87
// long double (64-bit mantissa), rounding twice. For about 0.2% of random
// doubles (mostly tiny or huge exponents) that yields a neighbouring double.
// So every candidate literal is checked against an exact emulation of that
// algorithm (package sqlreal); when neither the shortest form nor the 17-digit
// form survives, the value is written as an exact product of its integer
// mantissa and powers of two, which SQLite evaluates without rounding.
type realWriter struct {
	p sqlreal.Parser // the sqlite3 3.40 parser emulation; reused, so the hot loop does not allocate
}

// atof3401 parses lit as sqlite3 3.40 does.
func (w *realWriter) atof3401(lit []byte) float64 { return w.p.Parse(lit) }

// appendReal appends r as a SQL literal or constant expression.
func (w *realWriter) appendReal(b []byte, r float64) []byte {
	switch {
	case math.IsInf(r, 1):
		return append(b, "1e999"...)
	case math.IsInf(r, -1):
		return append(b, "-1e999"...)
	case math.IsNaN(r): // SQLite stores NaN as NULL; never read back as REAL
		return append(b, "NULL"...)
	}
	if r == math.Trunc(r) && r >= -9223372036854775808.0 && r < 9223372036854775808.0 {
		// sqlite3 .dump writes "%lld.0"; the parser reads it back exactly
		// because the integer part is at most 2^63 and (double)s is exact.
		if r == 0 && math.Signbit(r) {
			return append(b, "-0.0"...) // .dump writes 0.0 and loses the sign
		}
		b = strconv.AppendInt(b, int64(r), 10)
		return append(b, ".0"...)
	}
	start := len(b)
	b = strconv.AppendFloat(b, r, 'g', -1, 64)
	if w.atof3401(b[start:]) == r {
		return b
	}
	b = strconv.AppendFloat(b[:start], r, 'e', 16, 64)
	if w.atof3401(b[start:]) == r {
		return b
	}
	return appendRealExact(b[:start], r)
}

// appendRealExact writes r = m * 2^k as "(m.0*2^a*2^b...)" using factors
// that are exact integers (at most 2^62) or their reciprocals; every
// intermediate product is a double of larger magnitude than the next, so
// SQLite's double arithmetic never rounds.
func appendRealExact(b []byte, r float64) []byte {
	frac, exp := math.Frexp(r) // r = frac * 2^exp, 0.5 <= |frac| < 1
	m := int64(math.Ldexp(frac, 53))
	k := exp - 53
	for m != 0 && m%2 == 0 {
		m /= 2
		k++
	}
	b = append(b, '(')
	b = strconv.AppendInt(b, m, 10)
	b = append(b, ".0"...)
	for k != 0 {
		step := k
		if step > 62 {
			step = 62
		} else if step < -62 {
			step = -62
		}
		if step > 0 {
			b = append(b, '*')
		} else {
			b = append(b, '/')
		}
		n := step
		if n < 0 {
			n = -n
		}
		b = strconv.AppendInt(b, int64(1)<<uint(n), 10)
		k -= step
	}
	return append(b, ')')
}
