package dump

import (
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

func TestAppendHexMatchesEncodingHex(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	cases := [][]byte{nil, {}, {0}, {0xff}, every, every[1:], every[:7], every[:9], every[:15], every[:17]}
	for n := range 70 {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(r.Uint32())
		}
		cases = append(cases, v)
	}
	for _, v := range cases {
		for _, prefix := range []string{"", "X'"} {
			got := string(appendHex([]byte(prefix), v))
			if want := prefix + hex.EncodeToString(v); got != want {
				t.Fatalf("appendHex(%q, %x) = %q, want %q", prefix, v, got, want)
			}
		}
	}
}

func BenchmarkHex(b *testing.B) {
	v := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	dst := make([]byte, 0, 2*len(v)+8)
	for _, bc := range []struct {
		name string
		f    func([]byte, []byte) []byte
	}{
		{"appendHex", appendHex},
		{"encoding-hex", hex.AppendEncode},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(v)))
			for b.Loop() {
				dst = bc.f(dst[:0], v)
			}
		})
	}
}
