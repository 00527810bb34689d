package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// bf16Weights returns n bytes of little-endian bf16 values drawn from
// N(0, 0.02) and truncated from float32, as corpusgen writes model shards.
func bf16Weights(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0xbf16))
	b := make([]byte, n)
	for i := 0; i+1 < n; i += 2 {
		v := float32(r.NormFloat64() * 0.02)
		binary.LittleEndian.PutUint16(b[i:], uint16(math.Float32bits(v)>>16))
	}
	if n%2 == 1 {
		b[n-1] = byte(r.Uint32())
	}
	return b
}

// f32Weights returns n bytes of little-endian float32 values from N(0, 0.02).
func f32Weights(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0xf32))
	b := make([]byte, n)
	for i := 0; i+3 < n; i += 4 {
		binary.LittleEndian.PutUint32(b[i:], math.Float32bits(float32(r.NormFloat64()*0.02)))
	}
	return b
}

// widened returns bf16 weights stored as float32, as some checkpoints do:
// the low two bytes of every value are zero.
func widened(n int, seed uint64) []byte {
	h := bf16Weights(n/2, seed)
	b := make([]byte, n)
	for i := 0; i+1 < len(h) && 2*i+3 < n; i += 2 {
		b[2*i+2], b[2*i+3] = h[i], h[i+1]
	}
	return b
}

// logText returns n bytes of service-log-like text.
func logText(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x7e47))
	levels := []string{"INFO", "WARN", "DEBUG", "ERROR"}
	var sb strings.Builder
	for sb.Len() < n {
		fmt.Fprintf(&sb, "2026-11-26T%02d:%02d:%02d.%03dZ %s model=%s req=%08x tokens=%d latency_ms=%.1f path=/v1/chat/completions\n",
			r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000), levels[r.IntN(4)],
			[]string{"mixtral", "yi34b", "phi3"}[r.IntN(3)], r.Uint32(), r.IntN(4096), r.Float64()*900)
	}
	return []byte(sb.String()[:n])
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

type testInput struct {
	name string
	data []byte
}

func testInputs() []testInput {
	w := bf16Weights(1<<20+7, 1)
	f := f32Weights(1<<20, 2)
	return []testInput{
		{"empty", nil},
		{"1 byte", []byte{0x3f}},
		{"2 bytes", []byte{0x80, 0x3c}},
		{"3 bytes", []byte{1, 2, 3}},
		{"7 bytes", []byte{1, 2, 3, 4, 5, 6, 7}},
		{"63 bytes bf16", w[:63]},
		{"bf16", w[:1<<20]},
		{"bf16 odd length", w},
		{"bf16 odd phase", w[1:]},
		{"bf16 odd phase odd length", w[1 : 1<<20]},
		{"bf16 one block of values", w[:2*blockLen]},
		{"bf16 one block and one value", w[:2*blockLen+2]},
		{"bf16 one block and one byte", w[:2*blockLen+1]},
		{"bf16 4 MiB", bf16Weights(4<<20, 3)},
		{"f32", f},
		{"f32 phase 1", f[1:]},
		{"f32 phase 2", f[2 : 1<<19+3]},
		{"f32 phase 3", f[3:]},
		{"f32 widened bf16", widened(1<<20, 4)},
		{"random", randomBytes(300_001, 5)},
		{"text", logText(500_000, 6)},
		{"short text", []byte("model: mixtral\nport: 11400\n")},
		{"zeros", make([]byte, 300_000)},
		{"constant", bytes.Repeat([]byte{0xa5}, 200_001)},
		{"mixed halves", append(logText(200_000, 7), bf16Weights(200_000, 8)...)},
	}
}

var allIDs = []ID{Raw, Zstd, BF16, F32}

func TestRoundTripEncodeWith(t *testing.T) {
	enc := NewEncoder(Options{})
	dec := NewDecoder()
	for _, in := range testInputs() {
		for _, id := range allIDs {
			t.Run(in.name+"/"+id.String(), func(t *testing.T) {
				out, err := enc.EncodeWith(id, nil, in.data)
				if err != nil {
					t.Fatalf("EncodeWith: %v", err)
				}
				got, err := dec.Decode(nil, out, id, len(in.data))
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !bytes.Equal(got, in.data) {
					t.Fatalf("round trip differs (len %d, want %d)", len(got), len(in.data))
				}
			})
		}
	}
}

func TestRoundTripEncode(t *testing.T) {
	enc := NewEncoder(Options{})
	dec := NewDecoder()
	// The encoder and decoder are reused across chunks with dst buffers
	// holding the previous chunk, as the pipeline does.
	var ebuf, dbuf []byte
	for _, in := range testInputs() {
		t.Run(in.name, func(t *testing.T) {
			out, id, err := enc.Encode(ebuf, in.data)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if len(out) > len(in.data) && id != Raw {
				t.Errorf("%s output %d > input %d", id, len(out), len(in.data))
			}
			got, err := dec.Decode(dbuf, out, id, len(in.data))
			if err != nil {
				t.Fatalf("Decode %s: %v", id, err)
			}
			if !bytes.Equal(got, in.data) {
				t.Fatalf("%s round trip differs", id)
			}
			t.Logf("%s: %d -> %d (%.3f)", id, len(in.data), len(out), float64(len(out))/float64(max(1, len(in.data))))
			ebuf, dbuf = out, got
		})
	}
}

func TestEncodeChoice(t *testing.T) {
	w := bf16Weights(1<<20+1, 10)
	f := f32Weights(1<<20, 11)
	tests := []struct {
		name     string
		data     []byte
		want     ID
		maxRatio float64
	}{
		{"bf16", w[:1<<20], BF16, 0.68},
		// A content-defined boundary can fall inside a value.
		{"bf16 odd phase", w[1:], BF16, 0.68},
		{"f32", f, F32, 0.92},
		{"f32 phase 3", f[3:], F32, 0.92},
		{"f32 widened bf16", widened(1<<20, 12), F32, 0.35},
		{"text", logText(1<<20, 13), Zstd, 0.5},
		{"zeros", make([]byte, 1<<20), Zstd, 0.01},
		{"random", randomBytes(1<<20, 14), Raw, 1},
		{"tiny", []byte("hello"), Raw, 1},
	}
	enc := NewEncoder(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, id, err := enc.Encode(nil, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			ratio := float64(len(out)) / float64(len(tt.data))
			if id != tt.want {
				t.Errorf("Encode chose %s, want %s (ratio %.3f)", id, tt.want, ratio)
			}
			if ratio > tt.maxRatio {
				t.Errorf("ratio %.4f, want <= %.2f", ratio, tt.maxRatio)
			}
		})
	}
}

func TestPhaseDetection(t *testing.T) {
	w := bf16Weights(1<<20+3, 20)
	f := f32Weights(1<<20+3, 21)
	var s sample
	for p := range 2 {
		// Data that starts p bytes into a value has its first whole value
		// at (2-p)%2.
		if got, want := s.detectPhase(w[p:], 2), (2-p)%2; got != want {
			t.Errorf("bf16 shifted by %d: phase %d, want %d", p, got, want)
		}
	}
	for p := range 4 {
		if got, want := s.detectPhase(f[p:], 4), (4-p)%4; got != want {
			t.Errorf("f32 shifted by %d: phase %d, want %d", p, got, want)
		}
	}
}

func TestEncodeDoesNotAliasSrc(t *testing.T) {
	enc := NewEncoder(Options{})
	src := randomBytes(1000, 30)
	out, id, err := enc.Encode(nil, src)
	if err != nil || id != Raw {
		t.Fatalf("Encode: %s, %v", id, err)
	}
	want := bytes.Clone(src)
	src[0] ^= 0xff
	if !bytes.Equal(out, want) {
		t.Fatal("Raw output changed with src: it aliases src")
	}
}

func TestMinSaving(t *testing.T) {
	// Weights save about a third; demanding half must store them Raw.
	enc := NewEncoder(Options{MinSaving: 0.5})
	src := bf16Weights(1<<18, 31)
	out, id, err := enc.Encode(nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if id != Raw || !bytes.Equal(out, src) {
		t.Fatalf("got %s with %d bytes, want Raw", id, len(out))
	}
}

func TestUnknownID(t *testing.T) {
	enc := NewEncoder(Options{})
	if _, err := enc.EncodeWith(ID(9), nil, []byte("x")); err == nil {
		t.Error("EncodeWith(9) succeeded")
	}
	_, err := NewDecoder().Decode(nil, []byte("x"), ID(9), 1)
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Decode(9) = %v, want ErrCorrupt", err)
	}
	if got := ID(9).String(); got != "codec(9)" {
		t.Errorf("ID(9).String() = %q", got)
	}
}

func TestDecodeCorrupt(t *testing.T) {
	enc := NewEncoder(Options{})
	w := bf16Weights(300_001, 40)
	text := logText(100_000, 41)
	type enc1 struct {
		id  ID
		src []byte
	}
	var cases []enc1
	for _, c := range []enc1{{Raw, text[:1000]}, {Zstd, text}, {BF16, w}, {BF16, w[1:]}, {F32, f32Weights(100_003, 42)}, {BF16, randomBytes(70_000, 43)}} {
		out, err := enc.EncodeWith(c.id, nil, c.src)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, enc1{c.id, out})
		_ = c
	}
	srcs := [][]byte{text[:1000], text, w, w[1:], f32Weights(100_003, 42), randomBytes(70_000, 43)}
	dec := NewDecoder()
	for i, c := range cases {
		raw := srcs[i]
		name := fmt.Sprintf("%d-%s", i, c.id)
		mustCorrupt := func(what string, src []byte, rawLen int) {
			t.Helper()
			got, err := dec.Decode(nil, src, c.id, rawLen)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s %s: got %d bytes, err %v; want ErrCorrupt", name, what, len(got), err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "codec: ") {
				t.Errorf("%s %s: error %q lacks the codec: prefix", name, what, err)
			}
		}
		mustCorrupt("truncated by 1", c.src[:len(c.src)-1], len(raw))
		mustCorrupt("truncated to half", c.src[:len(c.src)/2], len(raw))
		mustCorrupt("empty", nil, len(raw))
		mustCorrupt("trailing byte", append(bytes.Clone(c.src), 0), len(raw))
		mustCorrupt("rawLen+1", c.src, len(raw)+1)
		mustCorrupt("rawLen-1", c.src, len(raw)-1)
		mustCorrupt("negative rawLen", c.src, -1)
		mustCorrupt("huge rawLen", c.src, MaxRawLen+1)
		if c.id == BF16 || c.id == F32 {
			bad := bytes.Clone(c.src)
			bad[0] = 7 // phase out of range
			mustCorrupt("bad header", bad, len(raw))
		}

		// Flipped bits may still decode (huff0 and raw blocks carry no
		// checksum; the chunk hash catches that), but never panic and
		// never return the wrong length.
		r := rand.New(rand.NewPCG(uint64(i), 50))
		for range 200 {
			bad := bytes.Clone(c.src)
			bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
			got, err := dec.Decode(nil, bad, c.id, len(raw))
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s flipped: error %v does not wrap ErrCorrupt", name, err)
			}
			if err == nil && len(got) != len(raw) {
				t.Fatalf("%s flipped: %d bytes, want %d", name, len(got), len(raw))
			}
		}
	}
}

func TestFloatModes(t *testing.T) {
	// A stream whose blocks take every mode: constant (RLE), skewed
	// (huff0) and uniform (raw), in that order.
	m := 3 * blockLen
	src := make([]byte, 2*m)
	r := rand.New(rand.NewPCG(60, 61))
	for i := range m {
		var e byte
		switch i / blockLen {
		case 0:
			e = 0x7c
		case 1:
			e = byte(0x78 + r.IntN(4))
		default:
			e = byte(r.Uint32())
		}
		src[2*i], src[2*i+1] = fromES(e, byte(r.Uint32()))
	}
	out, err := NewEncoder(Options{}).EncodeWith(BF16, nil, src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewDecoder().Decode(nil, out, BF16, len(src))
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("round trip failed: %v", err)
	}
	// phase byte, then the E stream's first block is RLE.
	if out[1] != modeRLE {
		t.Errorf("first block mode %d, want RLE", out[1])
	}
}

func TestESTransform(t *testing.T) {
	for v := range 1 << 16 {
		lo, hi := byte(v), byte(v>>8)
		e, s := toES(lo, hi)
		if e != byte(v>>7) {
			t.Fatalf("%#04x: exponent byte %#02x", v, e)
		}
		if l2, h2 := fromES(e, s); l2 != lo || h2 != hi {
			t.Fatalf("%#04x: round trip gives %#02x%02x", v, h2, l2)
		}
	}
}

// TestStreamOrder pins the documented order of stream bytes within a group
// of 8 values: it is part of the format on disk.
func TestStreamOrder(t *testing.T) {
	vals := make([]byte, 2*9)
	for i := range 9 {
		vals[2*i], vals[2*i+1] = fromES(byte(10+i), byte(20+i))
	}
	e, s := make([]byte, 9), make([]byte, 9)
	split2(e, s, vals)
	for t2, v := range perm2 {
		if e[t2] != byte(10+v) || s[t2] != byte(20+v) {
			t.Fatalf("bf16 stream byte %d holds value %d, want %d", t2, e[t2]-10, v)
		}
	}
	if e[8] != 18 || s[8] != 28 {
		t.Fatalf("bf16 tail out of order")
	}
	vals = make([]byte, 4*9)
	for i := range 9 {
		vals[4*i+2], vals[4*i+3] = fromES(byte(10+i), byte(20+i))
		vals[4*i+1], vals[4*i] = byte(30+i), byte(40+i)
	}
	var st [4][]byte
	for j := range st {
		st[j] = make([]byte, 9)
	}
	split4(&st, vals)
	for t4, v := range perm4 {
		for j, base := range []int{10, 20, 30, 40} {
			if st[j][t4] != byte(base+v) {
				t.Fatalf("f32 stream %d byte %d holds value %d, want %d", j, t4, int(st[j][t4])-base, v)
			}
		}
	}
	out := make([]byte, len(vals))
	merge4(out, &st)
	if !bytes.Equal(out, vals) {
		t.Fatal("merge4 does not invert split4")
	}
}
