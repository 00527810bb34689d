//go:build amd64 && !purego

package codec

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useBMI2 selects decodeFastBMI2 (huffdec_amd64.s) for decodeMulti's fast
// loop. It decodes exactly what decodeFastGeneric decodes, which remains
// the fallback on CPUs without BMI1/BMI2 and on other architectures.
var useBMI2 = cpu.X86.HasBMI1 && cpu.X86.HasBMI2

// fastState is what decodeFastBMI2 reads and writes; the offsets are
// fixed in huffdec_amd64.s.
type fastState struct {
	b   [4]*byte // 0: each stream's bytes
	dst [4]*byte // 32: each stream's output
	off [4]int   // 64: where the word with bit left-1 at its top starts
	lim [4]int   // 96: len(dst)-fastRoom; overwritten with the end address
	n   [4]int   // 128: symbols written to each dst (out)
	top [4]int   // 160: bits of the word at off taken (0-7)
}

// fastRoom is the room in each dst that a step of decodeFastBMI2 needs:
// five lookups of up to four symbols, the last one written as 4 bytes
// from up to 16 on.
const fastRoom = 23

// decodeFastBMI2 runs decodeFastGeneric's loop over s, five lookups a
// step: while every stream has a whole word below bit left (off >= 0)
// and room for fastRoom more bytes of output, it decodes a step from
// each.
//
//go:noescape
func decodeFastBMI2(multi *[1 << huffMaxBits]uint64, s *fastState)

// decodeFast runs the fast loop of decodeMulti: decodeFastBMI2 where the
// CPU has BMI2, else decodeFastGeneric.
func decodeFast(multi *[1 << huffMaxBits]uint64, st *[4]bitStream, dst *[4][]byte) (o [4]int) {
	if !useBMI2 {
		return decodeFastGeneric(multi, st, dst)
	}
	var s fastState
	for j := range 4 {
		// The assembly's preconditions: 64 bits to load a word from
		// (left <= 8*len(b) holds), fastRoom bytes of room.
		if st[j].left < 64 || len(dst[j]) < fastRoom || st[j].left > 8*len(st[j].b) {
			return o
		}
		s.b[j] = unsafe.SliceData(st[j].b)
		s.dst[j] = unsafe.SliceData(dst[j])
		p := (st[j].left + 7) >> 3
		s.off[j], s.top[j] = p-8, 8*p-st[j].left
		s.lim[j] = len(dst[j]) - fastRoom
	}
	decodeFastBMI2(multi, &s)
	for j := range 4 {
		st[j].left = 8*(s.off[j]+8) - s.top[j]
		o[j] = s.n[j]
	}
	return o
}
