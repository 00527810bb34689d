package codec

import (
	"encoding/binary"
	"errors"
	"math/bits"

	"github.com/klauspost/compress/huff0"
)

// huffDecoder decodes the huff0 4X blocks that huffEncoder writes (zstd's
// 4-stream Huffman literals) with a table that yields up to four symbols
// per lookup. The exponent stream of weights averages ~2.6 bits per
// symbol, so one 11-bit lookup decodes about three symbols; huff0's
// Decompress4X, one symbol per lookup, took twice as long.
type huffDecoder struct {
	tab    huffEncoder // parses the serialised table (readTable)
	multi  [1 << huffMaxBits]uint64
	sorted []byte // the coded symbols, shortest code first
	gap    [huffMaxBits + 1]int
	last   [2 << lastMaxBits]uint64 // build's lastSym tables
	huff0  huff0.Scratch            // for blocks of more than multiMaxSyms symbols
}

// A multi entry holds up to four symbols in its low 32 bits (the first in
// the lowest byte), the bits they take in bits 32-39, their count in bits
// 40-47, the length of the first symbol's code in bits 48-55 and their
// count again in bits 56-63, where the assembly decoder (huffdec_amd64.s)
// takes it with one shift.

// The multi-symbol decoder takes blocks whose table codes at most
// multiMaxSyms symbols with an expected code length of at most
// multiMaxBits bits (bf16 exponents: 18 symbols, 2.8 bits). Others (text:
// 53 symbols, 5.2 bits; the low halves of fp32 values seen as bf16: 256,
// 6.3) go to huff0's Decompress4X, which was 10-15% faster on them.
const (
	multiMaxSyms = 64
	multiMaxBits = 4
)

var errHuff = errors.New("bad huffman stream")

// build fills d.multi from the code table in d.tab: every sequence of up
// to four codes that fits in tableLog bits fills the range of indexes that
// starts with it, so the work is about one store per entry.
func (d *huffDecoder) build() {
	const tl = huffMaxBits // always index by 11 bits: a constant shift
	// The symbols by code length, shortest first, then by value: the
	// coded ones (a few dozen at most here) in one pass, then an
	// insertion sort (two counting passes over all 256 took a sixth of
	// build).
	d.sorted = d.sorted[:0]
	for s := range 256 {
		if l := d.tab.code[s] >> 16 & 15; l >= 1 && l <= huffMaxBits {
			d.sorted = append(d.sorted, byte(s))
		}
	}
	for i := 1; i < len(d.sorted); i++ {
		s := d.sorted[i]
		l := d.tab.code[s] >> 16 & 15
		j := i
		for ; j > 0 && d.tab.code[d.sorted[j-1]]>>16&15 > l; j-- {
			d.sorted[j] = d.sorted[j-1]
		}
		d.sorted[j] = s
	}
	// Codes are canonical, the longest ones lowest: in a space of k bits
	// left, the codes of up to k bits cover everything from gap[k] on,
	// and only the indexes below need the entry of the symbols so far.
	for k := range d.gap {
		d.gap[k] = 1 << k
	}
	for _, s := range d.sorted {
		c := d.tab.code[s]
		nb := uint(c >> 16)
		start := int(c&0xffff) << (tl - nb)
		for k := nb; k <= tl; k++ {
			d.gap[k] = min(d.gap[k], start>>(tl-k))
		}
	}
	// The last of four symbols in k bits, for every k the first three
	// can leave: lastSym(k)[i], for the k-bit index i, is what the symbol
	// whose code starts i adds to an entry, zero where no code fits.
	for k := uint(0); k <= lastMaxBits; k++ {
		t := d.lastSym(k)
		clear(t)
		for _, s := range d.sorted {
			c := d.tab.code[s]
			nb := uint(c >> 16)
			if nb > k {
				break
			}
			lo := int(c&0xffff) << (k - nb)
			hi := lo + 1<<(k-nb)
			if hi > len(t) {
				break // cannot happen: the codes of up to k bits fit k bits
			}
			e := uint64(s)<<24 | uint64(nb)<<32 | 1<<40 | 1<<56
			for i := range t[lo:hi] {
				t[lo+i] = e
			}
		}
	}
	for _, s := range d.sorted {
		c := d.tab.code[s]
		nb := uint(c >> 16)
		base := int(c&0xffff) << (tl - nb)
		d.fill(base, tl-nb, uint64(s), nb, 1, uint64(nb)<<48)
	}
}

// lastMaxBits is the most bits three codes leave of huffMaxBits: they
// take at least one each.
const lastMaxBits = huffMaxBits - 3

// lastSym returns the table of 1<<k entries in d.last that build fills
// for the fourth symbol of entries whose first three leave k bits.
func (d *huffDecoder) lastSym(k uint) []uint64 {
	return d.last[1<<k : 2<<k]
}

// fill fills the 1<<k entries from base, where the syms decoded so far
// (n of them, 1 or 2, taking used bits) leave k bits to decode more from.
func (d *huffDecoder) fill(base int, k uint, syms uint64, used uint, n uint64, first uint64) {
	end := base + 1<<k
	if end > len(d.multi) || base < 0 {
		return // cannot happen for a table readTable accepted
	}
	e := syms | uint64(used)<<32 | n<<40 | first | n<<56
	r := d.multi[base:end]
	r = r[:min(d.gap[k], len(r))]
	for i := range r {
		r[i] = e
	}
	for _, s := range d.sorted {
		c := d.tab.code[s]
		nb := uint(c >> 16)
		if nb > k {
			break
		}
		k3, b3 := k-nb, base+int(c&0xffff)<<(k-nb)
		if n == 1 {
			d.fill(b3, k3, syms|uint64(s)<<8, used+nb, 2, first)
			continue
		}
		// The third symbol here, and the fourth from the table build
		// made for k3 bits: one add per entry rather than a call and a
		// range per symbol (build took half as long). Below gap[k3] it
		// adds nothing: the entry is the three symbols'.
		if k3 > lastMaxBits || b3+1<<k3 > len(d.multi) {
			return // cannot happen: three codes take at least 3 bits
		}
		e3 := syms | uint64(s)<<16 | uint64(used+nb)<<32 | 3<<40 | first | 3<<56
		t := d.last[1<<k3 : 2<<k3]
		r := d.multi[b3 : b3+len(t)]
		for i := range r {
			r[i] = e3 + t[i]
		}
	}
}

// decode4 decodes a block of len(out) symbols from in, a serialised table
// followed by the jump table and four streams.
func (d *huffDecoder) decode4(out, in []byte) error {
	used, err := d.tab.readTable(in)
	if err != nil {
		return err
	}
	// The expected code length, in 1/2048 bits, if the code fits the
	// data: the sum over symbols of length * 2^-length.
	syms, cost := 0, 0
	for _, c := range d.tab.code {
		if nb := c >> 16; nb != 0 {
			syms++
			cost += int(nb) << (huffMaxBits - nb)
		}
	}
	if syms > multiMaxSyms || cost > multiMaxBits<<huffMaxBits {
		// Long codes or many symbols: few fit in one lookup and the
		// table takes long to fill; huff0's assembly decodes these
		// faster.
		s, rest, err := huff0.ReadTable(in, &d.huff0)
		if err != nil {
			return err
		}
		// Decompress4X decodes exactly cap(dst) symbols.
		got, err := s.Decoder().Decompress4X(out[:0:len(out)], rest)
		if err != nil {
			return err
		}
		if len(got) != len(out) {
			return errHuff
		}
		return nil
	}
	return d.decodeMulti(out, in[used:])
}

// decodeMulti decodes the streams (in: jump table and four streams) with
// the table that d.tab holds, however long its codes.
func (d *huffDecoder) decodeMulti(out, in []byte) error {
	d.build()
	return d.decodeStreams(out, in, false)
}

// decodeStreams decodes the streams of decodeMulti with d.multi as build
// left it, with decodeFastGeneric's fast loop if generic, else with
// decodeFast's (the tests compare the two). The loop is called directly
// rather than passed in: a function value would make st and dst escape.
func (d *huffDecoder) decodeStreams(out, in []byte, generic bool) error {
	if len(in) < 6 {
		return errHuff
	}
	var sz [4]int
	sz[0] = int(binary.LittleEndian.Uint16(in[0:]))
	sz[1] = int(binary.LittleEndian.Uint16(in[2:]))
	sz[2] = int(binary.LittleEndian.Uint16(in[4:]))
	in = in[6:]
	sz[3] = len(in) - sz[0] - sz[1] - sz[2]
	if sz[3] < 1 || sz[0] < 1 || sz[1] < 1 || sz[2] < 1 {
		return errHuff
	}
	seg := (len(out) + 3) / 4
	if len(out)-3*seg < 0 {
		return errHuff
	}
	var st [4]bitStream
	var dst [4][]byte
	off := 0
	for j := range 4 {
		b := in[off : off+sz[j]]
		off += sz[j]
		last := b[len(b)-1]
		if last == 0 {
			return errHuff
		}
		st[j] = bitStream{b: b, left: 8*len(b) - 9 + bits.Len8(last)}
		if j < 3 {
			dst[j] = out[j*seg : (j+1)*seg]
		} else {
			dst[j] = out[3*seg:]
		}
	}
	multi := &d.multi
	// The fast loop, in assembly where there is one (decodeFast), stops
	// where it likes: the loop below finishes from there.
	var o [4]int
	if generic {
		o = decodeFastGeneric(multi, &st, &dst)
	} else {
		o = decodeFast(multi, &st, &dst)
	}
	// The rest one symbol at a time.
	for j := range 4 {
		s := &st[j]
		w := dst[j]
		for i := o[j]; i < len(w); i++ {
			if s.left <= 0 {
				return errHuff
			}
			e := multi[s.word()>>(64-huffMaxBits)]
			w[i] = byte(e)
			s.left -= int(e >> 48 & 0xff)
		}
		if s.left != 0 {
			return errHuff
		}
	}
	return nil
}

// decodeFastGeneric decodes from the four streams while every one has 64
// bits left and room for 19 bytes of output, and returns how many symbols
// it wrote to each dst; st's left counts what remains.
func decodeFastGeneric(multi *[1 << huffMaxBits]uint64, st *[4]bitStream, dst *[4][]byte) (o [4]int) {
	// Fast loop: every stream has 64 bits left to load a whole word from,
	// and room for four lookups of up to four symbols each (16 bytes).
	// Each lookup writes 4 bytes at an offset the compiler only knows to
	// be at most 15 (a>>8&15), so the windows are 19 bytes: that proves
	// every store in bounds and drops 12 bounds checks per step (decode
	// +5%). Where the loop stops does not change what is decoded:
	// decodeMulti finishes from there.
	b0, b1, b2, b3 := st[0].b, st[1].b, st[2].b, st[3].b
	l0, l1, l2, l3 := st[0].left, st[1].left, st[2].left, st[3].left
	d0, d1, d2, d3 := dst[0], dst[1], dst[2], dst[3]
	const tm = 1<<huffMaxBits - 1
	for l0 >= 64 && l1 >= 64 && l2 >= 64 && l3 >= 64 &&
		len(d0) >= 19 && len(d1) >= 19 && len(d2) >= 19 && len(d3) >= 19 {
		p0, p1, p2, p3 := (l0+7)>>3, (l1+7)>>3, (l2+7)>>3, (l3+7)>>3
		if p0 > len(b0) || p1 > len(b1) || p2 > len(b2) || p3 > len(b3) {
			break // cannot happen: left <= 8*len(b)
		}
		v0 := binary.LittleEndian.Uint64(b0[p0-8:p0]) << (uint(8*p0-l0) & 63)
		v1 := binary.LittleEndian.Uint64(b1[p1-8:p1]) << (uint(8*p1-l1) & 63)
		v2 := binary.LittleEndian.Uint64(b2[p2-8:p2]) << (uint(8*p2-l2) & 63)
		v3 := binary.LittleEndian.Uint64(b3[p3-8:p3]) << (uint(8*p3-l3) & 63)
		w0, w1, w2, w3 := d0[:19:19], d1[:19:19], d2[:19:19], d3[:19:19]
		// a* sum e>>32: the bits taken in the low byte, the symbols
		// written in the next.
		var a0, a1, a2, a3 uint64
		// lookup 1
		e0 := multi[v0>>(64-huffMaxBits)]
		e1 := multi[v1>>(64-huffMaxBits)]
		e2 := multi[v2>>(64-huffMaxBits)]
		e3 := multi[v3>>(64-huffMaxBits)]
		binary.LittleEndian.PutUint32(w0[0:4], uint32(e0))
		binary.LittleEndian.PutUint32(w1[0:4], uint32(e1))
		binary.LittleEndian.PutUint32(w2[0:4], uint32(e2))
		binary.LittleEndian.PutUint32(w3[0:4], uint32(e3))
		v0 <<= e0 >> 32 & 63
		v1 <<= e1 >> 32 & 63
		v2 <<= e2 >> 32 & 63
		v3 <<= e3 >> 32 & 63
		a0 += e0 >> 32 & 0xffff
		a1 += e1 >> 32 & 0xffff
		a2 += e2 >> 32 & 0xffff
		a3 += e3 >> 32 & 0xffff
		// lookup 2
		e0 = multi[v0>>(64-huffMaxBits)]
		e1 = multi[v1>>(64-huffMaxBits)]
		e2 = multi[v2>>(64-huffMaxBits)]
		e3 = multi[v3>>(64-huffMaxBits)]
		binary.LittleEndian.PutUint32(w0[a0>>8&15:], uint32(e0))
		binary.LittleEndian.PutUint32(w1[a1>>8&15:], uint32(e1))
		binary.LittleEndian.PutUint32(w2[a2>>8&15:], uint32(e2))
		binary.LittleEndian.PutUint32(w3[a3>>8&15:], uint32(e3))
		v0 <<= e0 >> 32 & 63
		v1 <<= e1 >> 32 & 63
		v2 <<= e2 >> 32 & 63
		v3 <<= e3 >> 32 & 63
		a0 += e0 >> 32 & 0xffff
		a1 += e1 >> 32 & 0xffff
		a2 += e2 >> 32 & 0xffff
		a3 += e3 >> 32 & 0xffff
		// lookup 3
		e0 = multi[v0>>(64-huffMaxBits)]
		e1 = multi[v1>>(64-huffMaxBits)]
		e2 = multi[v2>>(64-huffMaxBits)]
		e3 = multi[v3>>(64-huffMaxBits)]
		binary.LittleEndian.PutUint32(w0[a0>>8&15:], uint32(e0))
		binary.LittleEndian.PutUint32(w1[a1>>8&15:], uint32(e1))
		binary.LittleEndian.PutUint32(w2[a2>>8&15:], uint32(e2))
		binary.LittleEndian.PutUint32(w3[a3>>8&15:], uint32(e3))
		v0 <<= e0 >> 32 & 63
		v1 <<= e1 >> 32 & 63
		v2 <<= e2 >> 32 & 63
		v3 <<= e3 >> 32 & 63
		a0 += e0 >> 32 & 0xffff
		a1 += e1 >> 32 & 0xffff
		a2 += e2 >> 32 & 0xffff
		a3 += e3 >> 32 & 0xffff
		// lookup 4
		e0 = multi[v0>>(64-huffMaxBits)]
		e1 = multi[v1>>(64-huffMaxBits)]
		e2 = multi[v2>>(64-huffMaxBits)]
		e3 = multi[v3>>(64-huffMaxBits)]
		binary.LittleEndian.PutUint32(w0[a0>>8&15:], uint32(e0))
		binary.LittleEndian.PutUint32(w1[a1>>8&15:], uint32(e1))
		binary.LittleEndian.PutUint32(w2[a2>>8&15:], uint32(e2))
		binary.LittleEndian.PutUint32(w3[a3>>8&15:], uint32(e3))
		a0 += e0 >> 32 & 0xffff
		a1 += e1 >> 32 & 0xffff
		a2 += e2 >> 32 & 0xffff
		a3 += e3 >> 32 & 0xffff
		d0, d1, d2, d3 = d0[a0>>8&0xff:], d1[a1>>8&0xff:], d2[a2>>8&0xff:], d3[a3>>8&0xff:]
		l0, l1, l2, l3 = l0-int(a0&0xff), l1-int(a1&0xff), l2-int(a2&0xff), l3-int(a3&0xff)
	}
	st[0].left, st[1].left, st[2].left, st[3].left = l0, l1, l2, l3
	o[0], o[1], o[2], o[3] = len(dst[0])-len(d0), len(dst[1])-len(d1), len(dst[2])-len(d2), len(dst[3])-len(d3)
	return o
}

// bitStream reads a huff0 stream backwards, from the bit below its end
// mark to bit 0.
type bitStream struct {
	b    []byte
	left int // bits not yet read: bits 0 to left-1, read from the top
}

// word returns the next bits, left-aligned: the top bit is bit left-1.
// Below bit 0 it reads zeros.
func (s *bitStream) word() uint64 {
	p := (s.left + 7) >> 3
	var w uint64
	if p >= 8 && p <= len(s.b) {
		w = binary.LittleEndian.Uint64(s.b[p-8 : p])
	} else {
		for i := 0; i < p && i < len(s.b); i++ {
			w |= uint64(s.b[i]) << (8 * uint(i+8-p) & 63)
		}
	}
	return w << (uint(8*p-s.left) & 63)
}
