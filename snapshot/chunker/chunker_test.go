package chunker

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func chunkAll(t testing.TB, data []byte, p Params, readSize int) [][]byte {
	c := New(&slowReader{data: data, n: readSize}, p, nil)
	var out [][]byte
	for {
		ch, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(ch))
	}
}

// slowReader returns at most n bytes per Read, like a pipe or a short read.
type slowReader struct {
	data []byte
	n    int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	if len(p) > s.n {
		p = p[:s.n]
	}
	k := copy(p, s.data)
	s.data = s.data[k:]
	return k, nil
}

var small = Params{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10, Seed: 7}

func TestChunksReassembleAndRespectBounds(t *testing.T) {
	data := randomBytes(3<<20+123, 1)
	for _, rs := range []int{1 << 20, 4097, 100} {
		chunks := chunkAll(t, data, small, rs)
		if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
			t.Fatalf("read size %d: chunks do not reassemble", rs)
		}
		for i, c := range chunks {
			if len(c) > small.Max || (len(c) < small.Min && i != len(chunks)-1) {
				t.Fatalf("chunk %d has %d bytes, outside [%d,%d]", i, len(c), small.Min, small.Max)
			}
		}
		mean := len(data) / len(chunks)
		if mean < small.Avg/2 || mean > small.Avg*2 {
			t.Fatalf("mean chunk size %d far from %d", mean, small.Avg)
		}
	}
}

func TestBoundariesIndependentOfReadSize(t *testing.T) {
	data := randomBytes(1<<20, 2)
	a := chunkAll(t, data, small, 1<<20)
	b := chunkAll(t, data, small, 777)
	if len(a) != len(b) {
		t.Fatalf("%d vs %d chunks", len(a), len(b))
	}
}

// An insertion near the start must leave most later chunks identical: this
// is what makes the insert-shift mutation cheap.
func TestInsertionResynchronises(t *testing.T) {
	data := randomBytes(4<<20, 3)
	shifted := append(append(bytes.Clone(data[:1000]), randomBytes(333, 9)...), data[1000:]...)
	set := map[[32]byte]bool{}
	for _, c := range chunkAll(t, data, small, 1<<20) {
		set[sha256.Sum256(c)] = true
	}
	after := chunkAll(t, shifted, small, 1<<20)
	shared := 0
	for _, c := range after {
		if set[sha256.Sum256(c)] {
			shared++
		}
	}
	if shared < len(after)-3 {
		t.Fatalf("only %d of %d chunks survived a 333-byte insertion", shared, len(after))
	}
}

func TestEmptyAndTiny(t *testing.T) {
	if got := chunkAll(t, nil, small, 10); len(got) != 0 {
		t.Fatalf("empty input gave %d chunks", len(got))
	}
	if got := chunkAll(t, []byte("x"), small, 10); len(got) != 1 || string(got[0]) != "x" {
		t.Fatalf("one byte: %q", got)
	}
}

func TestDefaultValid(t *testing.T) {
	if err := Default.Validate(); err != nil {
		t.Fatal(err)
	}
	if (Params{Min: 10, Avg: 5, Max: 20}).Validate() == nil {
		t.Fatal("avg < min accepted")
	}
}

func BenchmarkChunkerDefault(b *testing.B) {
	data := randomBytes(64<<20, 4)
	buf := make([]byte, 3*Default.Max)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var c Chunker
	for i := 0; i < b.N; i++ {
		c.Reset(bytes.NewReader(data), Default, buf)
		n := 0
		for {
			_, err := c.Next()
			if err == io.EOF {
				break
			}
			n++
		}
		b.ReportMetric(float64(len(data)/n), "B/chunk")
	}
}

func TestCutterMatchesChunker(t *testing.T) {
	data := randomBytes(2<<20+5, 6)
	want := chunkAll(t, data, small, 1000)
	k := NewCutter(small)
	var got [][]byte
	for b := data; len(b) > 0; {
		n := k.Cut(b)
		got = append(got, b[:n])
		b = b[n:]
	}
	if len(got) != len(want) {
		t.Fatalf("cutter: %d chunks, chunker: %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("chunk %d differs", i)
		}
	}
}

// refCut is the plain one-chain gear scan the two-lane scan must match
// cut for cut.
func refCut(c *Chunker, b []byte) int {
	n := min(len(b), c.p.Max)
	if len(b) <= c.p.Min {
		return len(b)
	}
	normal := min(c.p.Avg, n)
	var h uint64
	for i := c.p.Min - 64; i < n; i++ {
		h = h<<1 + c.gear[b[i]]
		if i < c.p.Min {
			continue
		}
		mask := c.maskL
		if i < normal {
			mask = c.maskS
		}
		if h&mask == 0 {
			return i + 1
		}
	}
	return n
}

func TestTwoLaneScanMatchesReference(t *testing.T) {
	for _, p := range []Params{Default, {Min: 64 << 10, Avg: 256 << 10, Max: 1 << 20, Seed: 3}, small} {
		k := NewCutter(p)
		for seed := uint64(1); seed <= 2; seed++ {
			data := randomBytes(12<<20+int(seed)*999, seed)
			// A run of zeros makes the hash constant: no cut until Max.
			clear(data[5<<20 : 10<<20])
			for b := data; len(b) > 0; {
				got, want := k.Cut(b), refCut(&k.c, b)
				if got != want {
					t.Fatalf("params %+v seed %d at %d: cut %d, reference %d", p, seed, len(data)-len(b), got, want)
				}
				b = b[got:]
			}
		}
	}
}

// NextInto reads into the caller's buffers and stops near each cut; its
// chunks must be Next's, whatever the parameters and read sizes.
func TestNextIntoMatchesNext(t *testing.T) {
	data := randomBytes(9<<20+77, 8)
	for _, p := range []Params{Default, {Min: 64 << 10, Avg: 256 << 10, Max: 1 << 20, Seed: 3}, small, {Min: 64, Avg: 128, Max: 256, Seed: 5}} {
		for _, rs := range []int{1 << 20, 4097, 100} {
			for _, n := range []int{0, 1, p.Min, p.Min + 1, p.Avg + 3, len(data)} {
				want := chunkAll(t, data[:n], p, rs)
				c := New(&slowReader{data: data[:n], n: rs}, p, nil)
				var got [][]byte
				for {
					ch, err := c.NextInto(make([]byte, p.Max))
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, ch)
				}
				if len(got) != len(want) {
					t.Fatalf("%+v read %d, %d bytes: %d chunks, Next %d", p, rs, n, len(got), len(want))
				}
				for i := range got {
					if !bytes.Equal(got[i], want[i]) {
						t.Fatalf("%+v read %d, %d bytes: chunk %d differs", p, rs, n, i)
					}
				}
			}
		}
	}
}
