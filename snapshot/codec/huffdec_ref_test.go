package codec

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// buildRef and fillRef are build and fill as they were before the table
// of last symbols: the reference that build must match entry for entry.

// build fills d.multi from the code table in d.tab: every sequence of up
// to four codes that fits in tableLog bits fills the range of indexes that
// starts with it, so the work is about one store per entry.
func (d *huffDecoder) buildRef() {
	const tl = huffMaxBits // always index by 11 bits: a constant shift
	// The symbols by code length, shortest first.
	var byLen [huffMaxBits + 2][]byte
	var syms [256]byte
	var cnt [huffMaxBits + 2]int
	for s := range 256 {
		cnt[d.tab.code[s]>>16&15]++
	}
	at := 0
	for l := 1; l <= huffMaxBits; l++ {
		byLen[l] = syms[at : at : at+cnt[l]]
		at += cnt[l]
	}
	for s := range 256 {
		l := d.tab.code[s] >> 16 & 15
		if l >= 1 && l <= huffMaxBits {
			byLen[l] = append(byLen[l], byte(s))
		}
	}
	d.sorted = d.sorted[:0]
	for l := 1; l <= huffMaxBits; l++ {
		d.sorted = append(d.sorted, byLen[l]...)
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
	for _, s := range d.sorted {
		c := d.tab.code[s]
		nb := uint(c >> 16)
		base := int(c&0xffff) << (tl - nb)
		d.fillRef(base, tl-nb, uint64(s), nb, 1, uint64(nb)<<48)
	}
}

// fill fills the 1<<k entries from base, where the syms decoded so far
// (n of them, taking used bits) leave k bits to decode more from.
func (d *huffDecoder) fillRef(base int, k uint, syms uint64, used uint, n uint64, first uint64) {
	end := base + 1<<k
	if end > len(d.multi) || base < 0 {
		return // cannot happen for a table readTable accepted
	}
	e := syms | uint64(used)<<32 | n<<40 | first | n<<56
	r := d.multi[base:end]
	if n < 4 {
		r = r[:min(d.gap[k], len(r))]
	}
	for i := range r {
		r[i] = e
	}
	if n == 4 {
		return
	}
	if n == 3 {
		// The last symbol: fill its range here rather than in a call.
		for _, s := range d.sorted {
			c := d.tab.code[s]
			nb := uint(c >> 16)
			if nb > k {
				break
			}
			lo := base + int(c&0xffff)<<(k-nb)
			hi := lo + 1<<(k-nb)
			if lo < 0 || hi > len(d.multi) {
				return
			}
			e := syms | uint64(s)<<24 | uint64(used+nb)<<32 | 4<<40 | first | 4<<56
			for i := range d.multi[lo:hi] {
				d.multi[lo+i] = e
			}
		}
		return
	}
	for _, s := range d.sorted {
		c := d.tab.code[s]
		nb := uint(c >> 16)
		if nb > k {
			break
		}
		d.fillRef(base+int(c&0xffff)<<(k-nb), k-nb, syms|uint64(s)<<(8*n), used+nb, n+1, first)
	}
}

// equivBlocks returns huff0 blocks of exponent streams like the bf16
// codec's (weights of several scales and shapes, whole blocks and odd
// lengths) and of the other shapes huffBlocks makes, with their lengths.
func equivBlocks(t *testing.T, seeds int) (blocks [][]byte, lens []int) {
	r := rand.New(rand.NewPCG(11, 12))
	var h huffEncoder
	add := func(blk []byte) {
		out, err := h.encode(nil, blk)
		if err != nil {
			return
		}
		blocks, lens = append(blocks, out), append(lens, len(blk))
	}
	for i := range seeds {
		n := blockLen
		if i%3 != 0 {
			n = 64 + r.IntN(blockLen-63)
		}
		vals := make([]byte, 2*n)
		scale := math.Pow(10, -4+3*r.Float64())
		for j := 0; j < n; j++ {
			var v float64
			switch i % 4 {
			case 0:
				v = r.NormFloat64() * scale
			case 1: // heavy tails
				v = r.NormFloat64() * scale / (0.05 + r.Float64())
			case 2: // uniform, as some initialisations
				v = (2*r.Float64() - 1) * scale
			case 3: // layer-norm weights around one
				v = 1 + r.NormFloat64()*scale
			}
			b := math.Float32bits(float32(v)) >> 16
			vals[2*j], vals[2*j+1] = byte(b), byte(b>>8)
		}
		e := make([]byte, n)
		split2(e, make([]byte, n), vals)
		add(e)
	}
	_, _, raws := huffBlocks(t)
	for _, raw := range raws {
		add(raw)
	}
	return blocks, lens
}

// TestHuffBuildRef checks build against buildRef on every entry.
func TestHuffBuildRef(t *testing.T) {
	blocks, _ := equivBlocks(t, 200)
	var d, ref huffDecoder
	for i, blk := range blocks {
		if _, err := d.tab.readTable(blk); err != nil {
			t.Fatal(err)
		}
		ref.tab.code = d.tab.code
		d.build()
		ref.buildRef()
		if d.multi != ref.multi {
			t.Fatalf("block %d: build differs from buildRef", i)
		}
	}
}

// checkFastEquiv decodes blk (a huff0 block of n symbols, maybe damaged)
// with decodeFast and decodeFastGeneric and fails unless both fail or
// both give the same bytes; the table comes from build, and on
// tables readTable accepts, build must agree with buildRef.
func checkFastEquiv(t *testing.T, d *huffDecoder, blk []byte, n int) {
	t.Helper()
	used, err := d.tab.readTable(blk)
	if err != nil {
		return
	}
	var ref huffDecoder
	ref.tab.code = d.tab.code
	d.build()
	ref.buildRef()
	if d.multi != ref.multi {
		t.Fatalf("build differs from buildRef")
	}
	got, want := make([]byte, n), make([]byte, n)
	errGot := d.decodeStreams(got, blk[used:], false)
	errWant := d.decodeStreams(want, blk[used:], true)
	if (errGot == nil) != (errWant == nil) {
		t.Fatalf("%d symbols: decodeFast error %v, decodeFastGeneric error %v", n, errGot, errWant)
	}
	// On an error the output is not used (Decode returns none), and how
	// much of it is written depends on where each fast loop stopped.
	if errGot == nil && !bytes.Equal(got, want) {
		t.Fatalf("%d symbols: decodeFast and decodeFastGeneric differ", n)
	}
}

// TestHuffFastEquiv compares the fast loops (assembly where there is
// one) on valid and damaged blocks.
func TestHuffFastEquiv(t *testing.T) {
	blocks, lens := equivBlocks(t, 200)
	var d huffDecoder
	for i, blk := range blocks {
		checkFastEquiv(t, &d, blk, lens[i])
		out := make([]byte, lens[i])
		if err := d.decode4(out, blk); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		i := r.IntN(len(blocks))
		blk := bytes.Clone(blocks[i])
		for range 1 + r.IntN(4) {
			blk[r.IntN(len(blk))] ^= byte(1 + r.IntN(255))
		}
		n := lens[i]
		if r.IntN(4) == 0 {
			n = r.IntN(2 * n)
		}
		checkFastEquiv(t, &d, blk, n)
	}
}

// FuzzHuffFast compares the fast loops on a block the encoder makes of
// the input (or, for a byte 0 in front, on the input as a block).
func FuzzHuffFast(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(uint8(1), uint16(len(s)), s)
	}
	var h huffEncoder
	e := make([]byte, 4096)
	split2(e, make([]byte, 4096), bf16Weights(8192, 9))
	blk, err := h.encode(nil, e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), uint16(4096), blk)
	var d huffDecoder
	f.Fuzz(func(t *testing.T, mode uint8, n uint16, data []byte) {
		if mode == 0 {
			checkFastEquiv(t, &d, data, int(n))
			return
		}
		// As exponents when mode is odd.
		src := data
		if mode&1 == 1 && len(data) >= 2 {
			src = make([]byte, len(data)/2)
			split2(src, make([]byte, len(src)), data)
		}
		blk, err := h.encode(nil, src)
		if err != nil {
			return
		}
		checkFastEquiv(t, &d, blk, len(src))
		out := make([]byte, len(src))
		if err := d.decode4(out, blk); err != nil || !bytes.Equal(out, src) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
