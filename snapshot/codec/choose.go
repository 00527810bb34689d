package codec

import (
	"encoding/binary"
	"math"
)

// Encode chooses a codec from statistics of a sample instead of trying
// every codec: trying zstd and the float codec on each chunk would cost
// more CPU than either, and the snapshot pipeline is CPU-bound.

const (
	// sampleSpans spans of spanLen bytes, spread evenly over the chunk, make
	// the sample: 64 KiB, about 6% of an average chunk and a few tens of
	// microseconds to count. Spans start at multiples of 4 so that byte
	// positions modulo 2 and 4 in the sample are those in the chunk.
	sampleSpans = 16
	spanLen     = 4096

	// matchSpans spans of the sample, spread over the chunk, are searched
	// for repeated 8-byte strings. Text, JSON, logs and zero runs repeat
	// themselves and belong to zstd; float weights almost never repeat 8
	// bytes. (4 bytes would be too short: bf16 widened to fp32 repeats
	// "00 00 xx yy" often, yet zstd gains little from such short matches.)
	// The share is averaged over the spans, so that the JSON header at the
	// start of a safetensors file does not send its first MiB of weights
	// to zstd. Every second position is tested, which halves the cost and
	// barely moves the share for text, whose repeats are long.
	matchSpans = 4

	// lzMatchFrac is the share of sampled positions that repeat an earlier
	// 8-byte string above which data is treated as LZ-friendly. Logs and
	// tokenizer JSON measure 0.35 to 0.5, float weights 0.000.
	lzMatchFrac = 0.2

	// groupGainBits is how much lower, in bits per byte, the byte-position
	// streams' entropy must be than that of all bytes together before
	// grouping is preferred to zstd: bf16 N(0, 0.02) weights gain about
	// 0.9, text about 0.
	groupGainBits = 0.25

	// maxGroupBits is the highest estimated bits per byte for which the
	// float codec is worth trying (7.6 is a 5% saving).
	maxGroupBits = 7.6

	// f32PreferBits is how much better the 4-stream estimate must be than
	// the 2-stream one to choose F32: bf16 data also looks good in 4
	// streams, and BF16 has half the stream overhead.
	f32PreferBits = 0.1

	// minFloatLen is the shortest chunk the float codecs are chosen for:
	// below it the per-position histograms are too thin to tell floats
	// from text, and weights come in chunks of ~1 MiB anyway.
	minFloatLen = 1024

	// noiseBits is the entropy, in bits per byte, above which data that
	// does not repeat itself (a match share below noiseMatchFrac) is
	// stored Raw without trying zstd: compressed or encrypted files,
	// random data. Rotated .gz logs measure 7.99 and 0.000.
	noiseBits      = 7.8
	noiseMatchFrac = 0.02
)

// sample holds byte histograms of a sample of a chunk by position modulo 4,
// and the share of positions that repeat an earlier 8-byte string.
// It lives in the Encoder so that sampling allocates nothing.
type sample struct {
	hist    [4][256]uint32
	n       int // bytes counted
	matches float64
	table   [1 << 12]uint64 // matchShare's hash table of 8-byte strings
	seen    [1 << 12]bool
}

func (s *sample) take(src []byte) {
	s.hist = [4][256]uint32{}
	s.n, s.matches = 0, 0
	spans := sampleSpans
	span := spanLen
	if len(src) <= sampleSpans*spanLen {
		spans, span = 1, len(src)
	}
	for i := range spans {
		var start int
		if spans > 1 {
			start = (i * (len(src) - span) / (spans - 1)) &^ 3
		}
		s.count(src[start : start+span])
		if spans == 1 {
			s.matches = s.matchShare(src)
		} else if i%(sampleSpans/matchSpans) == 0 {
			s.matches += s.matchShare(src[start:start+span]) / matchSpans
		}
	}
}

func (s *sample) count(b []byte) {
	h := &s.hist
	i := 0
	// Four tables, one per position modulo 4: what the choice needs, and
	// it keeps consecutive increments off the same counter.
	for ; i+4 <= len(b); i += 4 {
		h[0][b[i]]++
		h[1][b[i+1]]++
		h[2][b[i+2]]++
		h[3][b[i+3]]++
	}
	for j := 0; i < len(b); i, j = i+1, j+1 {
		h[j][b[i]]++
	}
	s.n += len(b)
}

// matchShare returns the share of b's even positions whose 8 bytes
// appeared earlier in b (as far as a small hash table remembers).
func (s *sample) matchShare(b []byte) float64 {
	if len(b) < 16 {
		return 0
	}
	table, seen := &s.table, &s.seen
	clear(seen[:])
	m, n := 0, 0
	for i := 0; i+8 <= len(b); i += 2 {
		v := binary.LittleEndian.Uint64(b[i:])
		h := (v * 0x9E3779B97F4A7C15) >> 52
		if seen[h] && table[h] == v {
			m++
		}
		table[h], seen[h] = v, true
		n++
	}
	return float64(m) / float64(n)
}

// entropy returns the order-0 entropy in bits per byte of the sampled bytes
// at positions congruent to j modulo k (k is 1, 2 or 4).
func (s *sample) entropy(k, j int) float64 {
	var h [256]uint32
	for r := j; r < 4; r += k {
		for c, v := range s.hist[r] {
			h[c] += v
		}
	}
	return entropyOf(&h)
}

// entropyOf returns the entropy of h in bits per symbol, with the
// Miller-Madow correction: a histogram of few samples looks more skewed
// than the data it came from, and the streams compared here have 1/4 or
// 1/2 of the samples of the whole, so uncorrected they would always look a
// little better than the whole.
func entropyOf(h *[256]uint32) float64 {
	n, k := 0, 0
	sum := 0.0
	for _, c := range h {
		if c > 0 {
			n += int(c)
			k++
			sum += float64(c) * math.Log2(float64(c))
		}
	}
	if n == 0 {
		return 0
	}
	return math.Log2(float64(n)) - sum/float64(n) + float64(k-1)/(2*float64(n)*math.Ln2)
}

// phase returns where the first whole k-byte little-endian value starts:
// the top byte (sign and exponent) is the position of lowest entropy, as
// long as it varies at all. Constant positions (the zero low half of bf16
// values widened to fp32, say) are not the top byte.
func (s *sample) phase(k int) int {
	top, best := -1, math.Inf(1)
	for j := range k {
		e := s.entropy(k, j)
		if e > 0.5 && e < best {
			top, best = j, e
		}
	}
	if top < 0 {
		return 0
	}
	return (top + 1) % k
}

// choice is Encode's decision for one chunk.
type choice struct {
	id    ID
	phase int // BF16, F32: offset of the first whole value
}

func (c choice) width() int {
	if c.id == F32 {
		return 4
	}
	return 2
}

func (s *sample) choose(src []byte) choice {
	if len(src) < 64 {
		// Too short for any codec's header to pay for itself.
		return choice{id: Raw}
	}
	s.take(src)
	if s.matches >= lzMatchFrac {
		return choice{id: Zstd}
	}
	h0 := s.entropy(1, 0)
	if len(src) >= minFloatLen {
		e2 := (min(8, s.entropy(2, 0)) + min(8, s.entropy(2, 1))) / 2
		e4 := 0.0
		for j := range 4 {
			e4 += min(8, s.entropy(4, j))
		}
		e4 /= 4
		c, est := choice{id: BF16}, e2
		if e4 < e2-f32PreferBits {
			c, est = choice{id: F32}, e4
		}
		if est <= h0-groupGainBits && est <= maxGroupBits {
			c.phase = s.phase(c.width())
			return c
		}
	}
	if h0 > noiseBits && s.matches < noiseMatchFrac {
		return choice{id: Raw}
	}
	return choice{id: Zstd}
}

// detectPhase is the phase choose would pick, for EncodeWith.
func (s *sample) detectPhase(src []byte, k int) int {
	if len(src) < 2*k {
		return 0
	}
	s.take(src)
	return s.phase(k)
}
