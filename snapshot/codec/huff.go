package codec

import (
	"encoding/binary"
	"errors"
	"math/bits"

	"github.com/klauspost/compress/fse"
	"github.com/klauspost/compress/huff0"
)

// huffEncoder writes huff0 4X blocks (a zstd-style Huffman table followed
// by four interleaved-decodable streams) that huff0.ReadTable and
// Decoder.Decompress4X read back. The table is built and serialised by
// huff0 itself; only counting and the bit packing are done here, because
// huff0.Compress4X spends a third of the float codec's time in a
// byte-at-a-time histogram: with a few exponents dominating, each
// increment waits on the previous one to the same counter. Counting into 8
// tables and packing here took bf16 encoding from ~800 to ~900 MB/s.
// (Packing the four streams in one interleaved loop was slower: the state
// of four bit writers does not fit in registers.)
type huffEncoder struct {
	s      huff0.Scratch // builds and serialises the table
	fse    fse.Scratch   // reads the serialised weights back
	hist   [8][256]uint32
	code   [256]uint32 // code value | bit length<<16, as the decoder sees it
	maxLen int         // the longest code in code, in bits
	weight [256]byte
	seg    [4][]byte // one stream's packed bits before assembly
	pair   []uint32  // two symbols' codes per entry (buildPairs)
}

// huffMaxBits is the longest code: huff0's limit. A limit of 8 would
// select huff0's faster 8-bit decoding loop, but measured on bf16 weights
// it bought 3.5% decode speed for 0.25% larger output.
const huffMaxBits = 11

// Blocks must be short enough that each of the 4 streams fits the jump
// table's 16-bit lengths even when every symbol takes huffMaxBits bits.
const _ = uint(65535*8/huffMaxBits*4 - blockLen) // compile-time: blockLen fits

// errNoGain reports a block that huff0 would not shrink enough.
var errNoGain = errors.New("no gain")

// encode appends the huff0 table and 4X streams of blk to dst, or returns
// huff0.ErrUseRLE for a block of one repeated byte and errNoGain when the
// result would not be at least 1/32 smaller than blk.
func (h *huffEncoder) encode(dst, blk []byte) ([]byte, error) {
	if len(blk) < 64 {
		return dst, errNoGain // the table alone would eat the gain
	}
	hist := h.count(blk)
	h.s.TableLog = huffMaxBits
	if cap(h.s.Out) < 256 {
		// AppendTable serialises into s.Out and then puts the old slice
		// back; with room in it, no block allocates.
		h.s.Out = make([]byte, 0, 256)
	}
	if err := h.s.BuildCTable(hist); err != nil {
		if errors.Is(err, huff0.ErrUseRLE) {
			return dst, huff0.ErrUseRLE
		}
		return dst, errNoGain
	}
	want := len(blk) - len(blk)>>5
	est := h.s.EstimateSize(hist)
	if est < 0 || est+8 >= want {
		return dst, errNoGain
	}
	start := len(dst)
	dst, err := h.s.AppendTable(dst)
	if err != nil {
		return dst[:start], errNoGain
	}
	if _, err := h.readTable(dst[start:]); err != nil {
		// Cannot happen with huff0's own output; raw is always correct.
		return dst[:start], errNoGain
	}

	seg := (len(blk) + 3) / 4
	var src [4][]byte
	for i := range 3 {
		src[i] = blk[i*seg : (i+1)*seg]
	}
	src[3] = blk[3*seg:]
	var n [4]int
	h.pack4(&src, &n, hist)

	total := len(dst) - start + 6 + n[0] + n[1] + n[2] + n[3]
	if total >= want || max(n[0], n[1], n[2]) > 0xffff {
		return dst[:start], errNoGain
	}
	dst = append(dst, byte(n[0]), byte(n[0]>>8), byte(n[1]), byte(n[1]>>8), byte(n[2]), byte(n[2]>>8))
	for i := range 4 {
		dst = append(dst, h.seg[i][:n[i]]...)
	}
	return dst, nil
}

// count returns blk's histogram, counted into four tables so that runs of
// one symbol do not serialise on a single counter.
func (h *huffEncoder) count(blk []byte) *[256]uint32 {
	t := &h.hist
	*t = [8][256]uint32{}
	i := 0
	for ; i+8 <= len(blk); i += 8 {
		v := binary.LittleEndian.Uint64(blk[i:])
		t[0][byte(v)]++
		t[1][byte(v>>8)]++
		t[2][byte(v>>16)]++
		t[3][byte(v>>24)]++
		t[4][byte(v>>32)]++
		t[5][byte(v>>40)]++
		t[6][byte(v>>48)]++
		t[7][v>>56]++
	}
	for ; i < len(blk); i++ {
		t[0][blk[i]]++
	}
	for s := range 256 {
		t[0][s] += t[1][s] + t[2][s] + t[3][s] + t[4][s] + t[5][s] + t[6][s] + t[7][s]
	}
	return &t[0]
}

// readTable derives the code of every symbol from a serialised table
// exactly as huff0.ReadTable does, so that the bits written here are the
// bits the decoder expects. It returns the table's length in bytes.
func (h *huffEncoder) readTable(in []byte) (int, error) {
	if len(in) < 2 {
		return 0, errors.New("short table")
	}
	w := h.weight[:]
	var n, used int
	if size := int(in[0]); size >= 128 {
		// 4-bit weights, two per byte.
		n = size - 127
		used = 1 + (n+1)/2
		if len(in) < used {
			return 0, errors.New("short table")
		}
		for i := 0; i < n; i += 2 {
			v := in[1+i/2]
			w[i] = v >> 4
			if i+1 < len(w) {
				w[i+1] = v & 15
			}
		}
	} else {
		used = 1 + size
		if len(in) < used {
			return 0, errors.New("short table")
		}
		h.fse.DecompressLimit = 255
		h.fse.Out = w[:0]
		b, err := fse.Decompress(in[1:1+size], &h.fse)
		h.fse.Out = nil
		if err != nil {
			return 0, err
		}
		n = copy(w, b) // a no-op unless fse outgrew w
		if n != len(b) {
			return 0, errors.New("table too long")
		}
	}
	if n >= 256 {
		return 0, errors.New("table too long")
	}
	var rank [16]uint32
	var total uint32
	for _, v := range w[:n] {
		if v > huffMaxBits {
			return 0, errors.New("weight too large")
		}
		rank[v]++
		if v > 0 {
			total += 1 << v >> 1
		}
	}
	if total == 0 {
		return 0, errors.New("zero weights")
	}
	// The last symbol's weight is implied: it tops the total up to a power
	// of two.
	tableLog := uint32(bits.Len32(total))
	if tableLog > huffMaxBits {
		return 0, errors.New("table log too large")
	}
	rest := uint32(1)<<tableLog - total
	if rest&(rest-1) != 0 {
		return 0, errors.New("weights do not sum to a power of two")
	}
	last := byte(bits.Len32(rest))
	w[n] = last
	rank[last]++
	n++

	// Canonical code values: each weight's codes start where the previous
	// weight's end, as huff0 fills its decoding table.
	var next uint32
	for v := uint32(1); v <= tableLog; v++ {
		cur := next
		next += rank[v] << (v - 1)
		rank[v] = cur
	}
	h.code = [256]uint32{}
	for s, v := range w[:n] {
		if v == 0 {
			continue
		}
		val := rank[v] >> (v - 1)
		rank[v] += 1 << v >> 1
		h.code[s] = val | (tableLog+1-uint32(v))<<16
	}
	h.maxLen = int(tableLog)
	return used, nil
}

// pairMaxSyms is the most distinct symbols a block may have for pack4 to
// code two symbols per table lookup: the pair table then has at most
// 64*64 live entries to fill per block.
const pairMaxSyms = 64

// pack4 packs the four segments into h.seg and stores their lengths in n.
func (h *huffEncoder) pack4(src *[4][]byte, n *[4]int, hist *[256]uint32) {
	pairs := h.buildPairs(hist)
	for i := range 4 {
		// 16 bytes cover the partial byte, the end mark and the last
		// 8-byte store.
		need := len(src[i])*h.maxLen/8 + 16
		if cap(h.seg[i]) < need {
			h.seg[i] = make([]byte, need, need+need/4)
		}
		if pairs {
			n[i] = pack1Pairs(h.seg[i][:need], src[i], &h.code, h.pair)
		} else {
			n[i] = pack1(h.seg[i][:need], src[i], &h.code)
		}
	}
}

// buildPairs fills h.pair for the symbols in hist, if there are few
// enough of them: entry x|y<<8 holds the code of x followed by y's, in the
// order pack1 writes them (y's bits first, the lower ones), as code |
// length<<24.
func (h *huffEncoder) buildPairs(hist *[256]uint32) bool {
	var present [256]byte
	k := 0
	for s, c := range hist {
		if c != 0 {
			if k == pairMaxSyms {
				return false
			}
			present[k] = byte(s)
			k++
		}
	}
	if h.pair == nil {
		h.pair = make([]uint32, 1<<16)
	}
	pt := h.pair[:1<<16]
	for _, x := range present[:k] {
		cx := h.code[x]
		for _, y := range present[:k] {
			cy := h.code[y]
			ly := cy >> 16
			pt[uint16(x)|uint16(y)<<8] = (cy&0xffff | (cx&0xffff)<<ly) | (ly+cx>>16)<<24
		}
	}
	return true
}

// pack1Pairs is pack1 with two symbols per lookup in pt (see buildPairs).
func pack1Pairs(buf, s []byte, ct *[256]uint32, pt []uint32) int {
	pt = pt[:1<<16]
	c, nb, g := packOdd(s, ct) // c: pending bits, the oldest in the low end; nb: how many
	pos := 0
	k := g
	if g&4 != 0 {
		k = g - 4
		// An odd group of four first; then eight at a time.
		binary.LittleEndian.PutUint64(buf[pos:], c)
		pos += int(nb >> 3)
		c >>= nb &^ 7 & 63
		nb &= 7
		w := binary.LittleEndian.Uint32(s[k : k+4 : k+4])
		a, b := pt[uint16(w>>16)], pt[uint16(w)]
		la := uint(a >> 24)
		v := uint64(a&0xffffff) | uint64(b&0xffffff)<<(la&63)
		c |= v << (nb & 63)
		nb += la + uint(b>>24)
	}
	for k -= 8; k >= 0; k -= 8 {
		binary.LittleEndian.PutUint64(buf[pos:], c)
		pos += int(nb >> 3)
		c >>= nb &^ 7 & 63
		nb &= 7
		w := binary.LittleEndian.Uint64(s[k : k+8 : k+8])
		p3, p2 := pt[uint16(w>>48)], pt[uint16(w>>32)]
		p1, p0 := pt[uint16(w>>16)], pt[uint16(w)]
		l3, l2, l1 := uint(p3>>24), uint(p2>>24), uint(p1>>24)
		l32 := l3 + l2
		l321 := l32 + l1
		if l321+uint(p0>>24) <= 56 {
			// Usually: eight codes fit next to the 7 pending bits (and
			// leave c short of 64, so the shift above stays below 64).
			v := uint64(p3&0xffffff) | uint64(p2&0xffffff)<<(l3&63) |
				uint64(p1&0xffffff)<<(l32&63) | uint64(p0&0xffffff)<<(l321&63)
			c |= v << (nb & 63)
			nb += l321 + uint(p0>>24)
			continue
		}
		v := uint64(p3&0xffffff) | uint64(p2&0xffffff)<<(l3&63)
		c |= v << (nb & 63)
		nb += l32
		binary.LittleEndian.PutUint64(buf[pos:], c)
		pos += int(nb >> 3)
		c >>= nb &^ 7 & 63
		nb &= 7
		v = uint64(p1&0xffffff) | uint64(p0&0xffffff)<<(l1&63)
		c |= v << (nb & 63)
		nb += l1 + uint(p0>>24)
	}
	// The end mark, a single 1 bit, then the last partial byte.
	c |= 1 << (nb & 63)
	nb++
	binary.LittleEndian.PutUint64(buf[pos:], c)
	return pos + int((nb+7)>>3)
}

// packOdd codes the last len(s)%4 symbols, which a stream starts with (see
// pack1), and returns the pending bits, their count, and where the groups
// of four end.
func packOdd(s []byte, ct *[256]uint32) (c uint64, nb uint, g int) {
	g = len(s) &^ 3
	for j := len(s) - 1; j >= g; j-- {
		e := ct[s[j]]
		c |= uint64(e&0xffff) << (nb & 63)
		nb += uint(e >> 16)
	}
	return c, nb, g
}

// pack1 packs one stream into buf and returns its length. huff0 writes a
// stream back to front, so that its decoder, which reads from the end,
// yields symbols front to back: the last len%4 symbols go first one by
// one, then groups of four from the end, each group's last symbol first.
func pack1(buf, s []byte, ct *[256]uint32) int {
	c, nb, g := packOdd(s, ct) // c: pending bits, the oldest in the low end; nb: how many
	pos := 0
	for k := g - 4; k >= 0; k -= 4 {
		// Store the whole bytes, keeping at most 7 bits: room for four
		// codes of up to 11 bits.
		binary.LittleEndian.PutUint64(buf[pos:], c)
		pos += int(nb >> 3)
		c >>= nb &^ 7 & 63
		nb &= 7
		t := s[k : k+4 : k+4]
		a, b, d, e := ct[t[3]], ct[t[2]], ct[t[1]], ct[t[0]]
		// Join the four codes first: their shifts do not wait on c.
		na := uint(a >> 16)
		nab := na + uint(b>>16)
		nabd := nab + uint(d>>16)
		v := uint64(a&0xffff) | uint64(b&0xffff)<<(na&63) | uint64(d&0xffff)<<(nab&63) | uint64(e&0xffff)<<(nabd&63)
		c |= v << (nb & 63)
		nb += nabd + uint(e>>16)
	}
	// The end mark, a single 1 bit, then the last partial byte.
	c |= 1 << (nb & 63)
	nb++
	binary.LittleEndian.PutUint64(buf[pos:], c)
	return pos + int((nb+7)>>3)
}
