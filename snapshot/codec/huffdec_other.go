//go:build !amd64 || purego

package codec

// decodeFast runs the fast loop of decodeMulti; there is no assembly
// version here.
func decodeFast(multi *[1 << huffMaxBits]uint64, st *[4]bitStream, dst *[4][]byte) [4]int {
	return decodeFastGeneric(multi, st, dst)
}
