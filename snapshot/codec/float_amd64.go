//go:build amd64 && !purego

package codec

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2 versions of split2 and merge2 (float_amd64.s).
// They produce exactly the bytes of split2Generic and merge2Generic, which
// remain the fallback on CPUs without AVX2 and on other architectures.
var useAVX2 = cpu.X86.HasAVX2

// split2AVX2 splits the n 2-byte values at vals into e and s; n is a
// multiple of 16.
//
//go:noescape
func split2AVX2(e, s, vals *byte, n int)

// merge2AVX2 merges the n symbols at e and s into the 2n bytes at dst; n
// is a multiple of 16.
//
//go:noescape
func merge2AVX2(dst, e, s *byte, n int)

// split2 splits 2-byte values into the E and S streams: whole groups of 16
// values with AVX2, the rest (and everything without AVX2) in Go. The
// groups of 8 values the stream order is defined on start at multiples of
// 8, so the two parts agree with split2Generic on the whole.
func split2(e, s, vals []byte) {
	m := len(vals) / 2
	e, s = e[:m], s[:m]
	if useAVX2 && m >= 16 {
		n := m &^ 15
		split2AVX2(&e[0], &s[0], &vals[0], n)
		e, s, vals = e[n:], s[n:], vals[2*n:]
	}
	split2Generic(e, s, vals)
}

// merge2 inverts split2 for one block: e and s hold the same number of
// symbols, dst twice as many bytes.
func merge2(dst, e, s []byte) {
	m := len(e)
	dst, s = dst[:2*m], s[:m]
	if useAVX2 && m >= 16 {
		n := m &^ 15
		merge2AVX2(&dst[0], &e[0], &s[0], n)
		dst, e, s = dst[2*n:], e[n:], s[n:]
	}
	merge2Generic(dst, e, s)
}
