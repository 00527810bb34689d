// Package chunker cuts a byte stream into content-defined chunks with a
// FastCDC-style gear hash, so that an insertion moves chunk boundaries only
// near the edit and everything after it still deduplicates.
//
// # Sizes
//
// Min 512 KiB, normal (average target) 1 MiB, max 4 MiB by default. The
// hash is not evaluated for the first Min bytes of a chunk (FastCDC's
// cut-point skipping), so a large Min halves the chunking cost on model
// weights; 1 MiB chunks keep the index at ~50 bytes per MiB stored (2 TB of
// weights → ~100 MB of index) while a fine-tune that rewrites whole tensors
// still dedups everything outside the rewritten tensors. Normalised
// chunking (a harder mask before the normal size, an easier one after)
// keeps sizes close to the average.
//
// # Concurrency
//
// A Chunker is used by one goroutine.
package chunker

import (
	"errors"
	"fmt"
	"io"
)

// Params are the chunk size bounds in bytes and the gear table seed.
type Params struct {
	Min, Avg, Max int
	Seed          uint64
}

// Default are the parameters new repositories get.
var Default = Params{Min: 512 << 10, Avg: 1 << 20, Max: 4 << 20, Seed: 0x63697461}

// Validate checks that the parameters make sense.
func (p Params) Validate() error {
	if p.Min < 64 || p.Avg <= p.Min || p.Max < p.Avg || p.Max > 64<<20 {
		return fmt.Errorf("chunker: bad sizes min=%d avg=%d max=%d (want 64 <= min < avg <= max <= %d)", p.Min, p.Avg, p.Max, 64<<20)
	}
	if p.Avg&(p.Avg-1) != 0 {
		return fmt.Errorf("chunker: average %d is not a power of two", p.Avg)
	}
	return nil
}

// Chunker splits one stream.
type Chunker struct {
	r            io.Reader
	p            Params
	gear         *[256]uint64
	maskS, maskL uint64
	buf          []byte
	start, end   int
	eof          bool
	err          error
	// carry is what NextInto read past its last cut, the next chunk's start.
	carry []byte
}

// New returns a chunker over r. buf, if large enough (3×Max), is used as the
// read buffer so callers can reuse it across files.
func New(r io.Reader, p Params, buf []byte) *Chunker {
	c := &Chunker{}
	c.Reset(r, p, buf)
	return c
}

// Reset starts over on a new stream, keeping the buffer.
func (c *Chunker) Reset(r io.Reader, p Params, buf []byte) {
	if buf == nil {
		buf = c.buf
	}
	if cap(buf) < 3*p.Max {
		buf = make([]byte, 3*p.Max)
	}
	*c = Chunker{r: r, buf: buf[:cap(buf)], carry: c.carry[:0]}
	c.setParams(p)
}

func (c *Chunker) setParams(p Params) {
	bits := 0
	for 1<<bits < p.Avg {
		bits++
	}
	c.p, c.gear = p, gearTable(p.Seed)
	c.maskS, c.maskL = ^uint64(0)<<(64-(bits+2)), ^uint64(0)<<(64-(bits-2))
}

// Cutter finds chunk boundaries in bytes already in memory (a mapped
// file), so large files are chunked without copying them through a read
// buffer. It cuts exactly where a Chunker over the same bytes would.
type Cutter struct{ c Chunker }

// NewCutter returns a Cutter for p.
func NewCutter(p Params) *Cutter {
	k := &Cutter{}
	k.c.setParams(p)
	return k
}

// Cut returns the length of the chunk at the start of b (all of b when b
// is no longer than the minimum chunk size).
func (k *Cutter) Cut(b []byte) int { return k.c.cut(b) }

// Next returns the next chunk. The slice is valid until the next call.
// At the end of the stream it returns io.EOF.
func (c *Chunker) Next() ([]byte, error) {
	if c.end-c.start < c.p.Max && !c.eof {
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	if c.end == c.start {
		return nil, io.EOF
	}
	n := c.cut(c.buf[c.start:c.end])
	chunk := c.buf[c.start : c.start+n]
	c.start += n
	return chunk, nil
}

func (c *Chunker) fill() error {
	if c.err != nil {
		return c.err
	}
	copy(c.buf, c.buf[c.start:c.end])
	c.end -= c.start
	c.start = 0
	for c.end < len(c.buf) {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if errors.Is(err, io.EOF) {
			c.eof = true
			return nil
		}
		if err != nil {
			c.err = err
			return err
		}
		if n == 0 {
			c.err = io.ErrNoProgress
			return c.err
		}
	}
	return nil
}

// readStep is how much NextInto reads at a time past the minimum chunk
// size, and so the most it reads past a cut.
const readStep = 128 << 10

// NextInto reads the next chunk into dst, which must hold Max bytes, and
// returns it (a prefix of dst); at the end of the stream it returns
// io.EOF. It cuts where Next does. Next reads into its own buffer and the
// caller copies each chunk out of it; NextInto reads straight into the
// chunk's buffer, Min bytes and then readStep at a time, hashing as it
// goes, and stops at the cut: only what it read past the cut is copied
// (into the chunker, then into the next dst), under readStep a chunk
// instead of the whole chunk and Next's refills. A cut the scan finds
// among the bytes read so far is final, since it is the first match in
// its range whatever follows.
func (c *Chunker) NextInto(dst []byte) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	dst = dst[:c.p.Max]
	filled := copy(dst, c.carry)
	c.carry = c.carry[:0]
	want, scanned := c.p.Min, c.p.Min
	var cut int
	for {
		for filled < want && !c.eof {
			n, err := c.r.Read(dst[filled:want])
			filled += n
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else if err != nil {
				c.err = err
				return nil, err
			} else if n == 0 {
				c.err = io.ErrNoProgress
				return nil, c.err
			}
		}
		if c.eof && filled <= c.p.Min {
			if filled == 0 {
				return nil, io.EOF
			}
			cut = filled
			break
		}
		if scanned < c.p.Avg && scanned < filled {
			hi := min(filled, c.p.Avg)
			if i := scan(dst, scanned, hi, c.maskS, c.gear); i >= 0 {
				cut = i + 1
				break
			}
			scanned = hi
		}
		if scanned >= c.p.Avg && scanned < filled {
			if i := scan(dst, scanned, filled, c.maskL, c.gear); i >= 0 {
				cut = i + 1
				break
			}
			scanned = filled
		}
		if filled == c.p.Max || c.eof {
			cut = filled
			break
		}
		want = min(filled+readStep, c.p.Max)
	}
	c.carry = append(c.carry, dst[cut:filled]...)
	return dst[:cut], nil
}

// cut returns the length of the chunk at the start of b.
func (c *Chunker) cut(b []byte) int {
	n := len(b)
	if n <= c.p.Min {
		return n
	}
	if n > c.p.Max {
		n = c.p.Max
	}
	normal := c.p.Avg
	if normal > n {
		normal = n
	}
	if i := scan(b, c.p.Min, normal, c.maskS, c.gear); i >= 0 {
		return i + 1
	}
	if i := scan(b, normal, n, c.maskL, c.gear); i >= 0 {
		return i + 1
	}
	return n
}

// scanLane is how far the two lanes of scan run apart. A cut found by the
// second lane is only used once the first lane has none, so up to one
// lane's length of hashing is wasted per chunk (~4% at 32 KiB).
const scanLane = 32 << 10

// scan returns the first position i in [lo, hi) whose gear hash matches
// mask (h&mask == 0), or -1. The hash at i depends only on b[i-63..i]
// (older bytes are shifted out of the 64-bit word), so two stretches can
// be hashed independently, each warmed over the 64 bytes before it. The
// hash is one long dependency chain; interleaving two chains lets the CPU
// overlap them, for the same cut points as a single pass. lo >= 64.
func scan(b []byte, lo, hi int, mask uint64, gear *[256]uint64) int {
	for p := lo; p < hi; p += 2 * scanLane {
		aEnd := min(p+scanLane, hi)
		bEnd := min(aEnd+scanLane, hi)
		var ha, hb uint64
		for _, x := range b[p-64 : p] {
			ha = ha<<1 + gear[x]
		}
		for _, x := range b[aEnd-64 : aEnd] {
			hb = hb<<1 + gear[x]
		}
		la, lb := b[p:aEnd], b[aEnd:bEnd] // len(lb) <= len(la)
		cutB := -1
		i := 0
		for ; i < len(lb); i++ {
			ha = ha<<1 + gear[la[i]]
			hb = hb<<1 + gear[lb[i]]
			if ha&mask == 0 {
				return p + i
			}
			if hb&mask == 0 {
				cutB = aEnd + i
				i++
				break
			}
		}
		// Lane A alone: the rest of it, which still comes before any cut
		// lane B found.
		for ; i < len(la); i++ {
			ha = ha<<1 + gear[la[i]]
			if ha&mask == 0 {
				return p + i
			}
		}
		if cutB >= 0 {
			return cutB
		}
	}
	return -1
}

var gearCache = map[uint64]*[256]uint64{}

// gearTable derives the 256 random gear values from seed with splitmix64,
// so every binary computes the same table for a repository's seed.
func gearTable(seed uint64) *[256]uint64 {
	if t, ok := gearCacheGet(seed); ok {
		return t
	}
	var t [256]uint64
	x := seed
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		t[i] = z ^ (z >> 31)
	}
	gearCachePut(seed, &t)
	return &t
}
