//go:build !amd64 || purego

package codec

// useAVX2 is false where there is no assembly version of split2 and merge2.
const useAVX2 = false

// split2 splits 2-byte values into the E and S streams.
func split2(e, s, vals []byte) { split2Generic(e, s, vals) }

// merge2 inverts split2 for one block: e and s hold the same number of
// symbols, dst twice as many bytes.
func merge2(dst, e, s []byte) { merge2Generic(dst, e, s) }
