package dump

import (
	"encoding/hex"
	"math"
	"math/rand"
	"strconv"
	"testing"
)

// TestRealFastPathMatchesBig: the integer fast path of atof3401 gives the
// same double as the big.Float emulation of x87 long double arithmetic.
func TestRealFastPathMatchesBig(t *testing.T) {
	var fast, slow realWriter
	slow.p.Slow = true
	r := rand.New(rand.NewSource(3))
	for i := 0; i < 200000; i++ {
		var f float64
		switch i % 3 {
		case 0:
			f = float64(r.Int63n(1e12)) / math.Pow(10, float64(r.Intn(12)))
		case 1:
			f = r.NormFloat64() * math.Pow(10, float64(r.Intn(30)-20))
		default:
			f = math.Float64frombits(r.Uint64())
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		for _, lit := range [][]byte{strconv.AppendFloat(nil, f, 'g', -1, 64), strconv.AppendFloat(nil, f, 'e', 16, 64)} {
			if a, b := fast.atof3401(lit), slow.atof3401(lit); math.Float64bits(a) != math.Float64bits(b) {
				t.Fatalf("%s: fast %v, big %v", lit, a, b)
			}
		}
	}
}

// TestAppendRealLiterals pins the literal forms.
func TestAppendRealLiterals(t *testing.T) {
	var w realWriter
	cases := []struct {
		in   float64
		want string
	}{
		{1, "1.0"}, {-1, "-1.0"}, {0, "0.0"}, {math.Copysign(0, -1), "-0.0"},
		{math.Inf(1), "1e999"}, {math.Inf(-1), "-1e999"}, {0.5, "0.5"}, {0.1, "0.1"},
		{-9223372036854775808, "-9223372036854775808.0"}, {9223372036854775808, "9.223372036854776e+18"},
		{1e300, "1e+300"}, {123.45, "123.45"},
		// SQLite 3.40 misreads these shortest forms; the exact form is used.
		{6.488487418099843e-307, "(8208027962372139.0/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904/65536)"},
	}
	for _, c := range cases {
		if got := string(w.appendReal(nil, c.in)); got != c.want {
			t.Errorf("appendReal(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestAppendBlobHex(t *testing.T) {
	for n := 0; n < 40; n++ {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(i*37 + n)
		}
		want := "X'" + hex.EncodeToString(v) + "'"
		if got := string(appendBlob([]byte("pre"), v)); got != "pre"+want {
			t.Fatalf("appendBlob(%x) = %s, want pre%s", v, got, want)
		}
	}
}
