// Package sqlreal emulates exactly how the sqlite3 3.40 shell's
// sqlite3AtoF turns a REAL literal into a double: it accumulates the
// digits in an int64 and scales by powers of ten in x87 long double
// (64-bit mantissa), rounding twice. The dump writes literals that this
// parser reads back to the same bits, and restore parses them the same
// way, so both agree with the sqlite3 shell (the pure-Go SQLite's own
// parser differs for some values).
package sqlreal

import (
	"math"
	"math/big"
	"math/bits"
)

// Parser parses REAL literals; its zero value is ready. It keeps scratch
// big.Floats so that parsing does not allocate. Not safe for concurrent use.
type Parser struct {
	a, b, c big.Float
	Slow    bool // tests: always take the big.Float path
}

// pow10u[e] is 10^e for the exponents where it fits a uint64.
var pow10u = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// quoRound64to53 returns s/d rounded first to a 64-bit mantissa (x87 long
// double, to nearest even) and then to a double, as SQLite 3.40 computes
// s / scale on x86-64. The result is a normal double for the inputs used
// here (s >= 1, d <= 10^19).
func quoRound64to53(s, d uint64) float64 {
	sh := 63 - bits.Len64(s) + bits.Len64(d)
	q, rem := div128(s, sh, d)
	if q < 1<<63 {
		sh++
		q, rem = div128(s, sh, d)
	}
	if rem > d-rem || (rem == d-rem && q&1 == 1) {
		q++
		if q == 0 { // carried out of 64 bits
			q = 1 << 63
			sh--
		}
	}
	m := q >> 11
	if low := q & 0x7ff; low > 0x400 || (low == 0x400 && m&1 == 1) {
		m++
	}
	return math.Ldexp(float64(m), 11-sh)
}

// div128 returns (s << sh) / d and its remainder; the quotient must fit
// 64 bits.
func div128(s uint64, sh int, d uint64) (q, rem uint64) {
	var hi, lo uint64
	switch {
	case sh == 0:
		lo = s
	case sh < 64:
		hi, lo = s>>(64-sh), s<<sh
	default:
		hi = s << (sh - 64)
	}
	return bits.Div64(hi, lo, d)
}

// Parse returns the double that SQLite 3.40.1's sqlite3AtoF produces
// for the literal lit (as sluice writes them: optional '-', digits,
// optional fraction, optional exponent). A leading '-' is applied after
// parsing, as SQLite's parser applies unary minus to the positive literal.
func (w *Parser) Parse(lit []byte) float64 {
	const largest = math.MaxInt64
	neg := false
	i := 0
	if i < len(lit) && lit[i] == '-' {
		neg = true
		i++
	}
	var s int64
	d, e, esign := 0, 0, 1
	for ; i < len(lit) && isDigit(lit[i]); i++ {
		s = s*10 + int64(lit[i]-'0')
		if s >= (largest-9)/10 {
			for i+1 < len(lit) && isDigit(lit[i+1]) {
				i++
				d++
			}
		}
	}
	if i < len(lit) && lit[i] == '.' {
		i++
		for ; i < len(lit) && isDigit(lit[i]); i++ {
			if s < (largest-9)/10 {
				s = s*10 + int64(lit[i]-'0')
				d--
			}
		}
	}
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		if i < len(lit) && lit[i] == '-' {
			esign = -1
			i++
		} else if i < len(lit) && lit[i] == '+' {
			i++
		}
		for ; i < len(lit) && isDigit(lit[i]); i++ {
			if e < 10000 {
				e = e*10 + int(lit[i]-'0')
			} else {
				e = 10000
			}
		}
	}
	e = e*esign + d
	if e < 0 {
		esign, e = -1, -e
	} else {
		esign = 1
	}
	var result float64
	if s == 0 {
		result = 0
	} else {
		for e > 0 {
			if esign > 0 {
				if s >= largest/10 {
					break
				}
				s *= 10
			} else {
				if s%10 != 0 {
					break
				}
				s /= 10
			}
			e--
		}
		if e == 0 {
			result = float64(s)
		} else {
			x := w.c.SetPrec(64).SetMode(big.ToNearestEven)
			switch {
			case e > 307 && e < 342:
				scale := w.pow10(e - 308)
				x.SetInt64(s)
				if esign < 0 {
					x.Quo(x, scale)
					result, _ = x.Float64()
					result /= 1e308
				} else {
					x.Mul(x, scale)
					result, _ = x.Float64()
					result *= 1e308
				}
			case e >= 342:
				if esign < 0 {
					result = 0
				} else {
					result = math.Inf(1)
				}
			case esign < 0 && e < len(pow10u) && !w.Slow:
				// The common case (values like 123.45), exactly and
				// without big.Float: 10^e is exact in long double.
				result = quoRound64to53(uint64(s), pow10u[e])
			default:
				scale := w.pow10(e)
				x.SetInt64(s)
				if esign < 0 {
					x.Quo(x, scale)
				} else {
					x.Mul(x, scale)
				}
				result, _ = x.Float64()
			}
		}
	}
	if neg {
		return -result
	}
	return result
}

// pow10 returns 10^e computed as SQLite 3.40's sqlite3Pow10 does: square
// and multiply in x87 long double, each product rounded to 64 bits.
func (w *Parser) pow10(e int) *big.Float {
	r := w.a.SetPrec(64).SetMode(big.ToNearestEven).SetInt64(1)
	x := w.b.SetPrec(64).SetMode(big.ToNearestEven).SetInt64(10)
	for {
		if e&1 != 0 {
			r.Mul(r, x)
		}
		e >>= 1
		if e == 0 {
			break
		}
		x.Mul(x, x)
	}
	return r
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
