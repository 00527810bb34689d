package codec

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// checkSplitMerge compares split2 and merge2 (the AVX2 versions where the
// CPU has AVX2) against split2Generic and merge2Generic on vals, checks
// that merge2 inverts split2, and that neither writes past its m or 2m
// bytes.
func checkSplitMerge(t testing.TB, vals []byte) {
	t.Helper()
	m := len(vals) / 2
	const guard = 40 // bytes after each output that must stay untouched
	fill := func(n int) []byte {
		b := make([]byte, n+guard)
		for i := range b {
			b[i] = 0xA5
		}
		return b
	}
	untouched := func(what string, b []byte, n int) {
		t.Helper()
		for i, c := range b[n:] {
			if c != 0xA5 {
				t.Fatalf("len %d: %s: byte %d past the end written", len(vals), what, i)
			}
		}
	}

	ge, gs := fill(m), fill(m)
	split2Generic(ge[:m], gs[:m], vals)
	e, s := fill(m), fill(m)
	split2(e[:m], s[:m], vals)
	if !bytes.Equal(e, ge) || !bytes.Equal(s, gs) {
		t.Fatalf("len %d: split2 differs from split2Generic", len(vals))
	}
	untouched("split2 e", e, m)
	untouched("split2 s", s, m)

	want := fill(2 * m)
	merge2Generic(want[:2*m], e[:m], s[:m])
	got := fill(2 * m)
	merge2(got[:2*m], e[:m], s[:m])
	if !bytes.Equal(got, want) {
		t.Fatalf("len %d: merge2 differs from merge2Generic", len(vals))
	}
	untouched("merge2", got, 2*m)
	if !bytes.Equal(got[:2*m], vals[:2*m]) {
		t.Fatalf("len %d: merge2(split2(v)) != v", len(vals))
	}

	// merge2 of arbitrary streams (not only those split2 produced).
	if m > 0 {
		r := rand.New(rand.NewPCG(uint64(m), 7))
		for i := range m {
			e[i], s[i] = byte(r.Uint32()), byte(r.Uint32())
		}
		merge2Generic(want[:2*m], e[:m], s[:m])
		merge2(got[:2*m], e[:m], s[:m])
		if !bytes.Equal(got, want) {
			t.Fatalf("len %d: merge2 differs from merge2Generic on random streams", len(vals))
		}
	}
}

func TestSplitMerge2Equivalence(t *testing.T) {
	t.Logf("useAVX2 = %v", useAVX2)
	r := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	for n := 0; n <= 300; n++ {
		checkSplitMerge(t, rnd(n))
		// Unaligned starts.
		checkSplitMerge(t, rnd(n + 3)[3:])
	}
	for _, n := range []int{1 << 16, 1<<16 + 1, 1<<16 + 31, 1 << 17, 1<<20 + 14} {
		checkSplitMerge(t, rnd(n))
	}
	for range 20 {
		checkSplitMerge(t, rnd(r.IntN(1<<18)))
	}
	// The bytes that matter most: every 16-bit value, in order.
	all := make([]byte, 2<<16)
	for v := range 1 << 16 {
		all[2*v], all[2*v+1] = byte(v), byte(v>>8)
	}
	checkSplitMerge(t, all)
	checkSplitMerge(t, bf16Weights(5000, 9))
}

func FuzzMerge2Split2(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Add(bf16Weights(100, 1))
	f.Add(bf16Weights(1001, 2))
	f.Add(randomBytes(97, 3))
	f.Fuzz(func(t *testing.T, vals []byte) {
		checkSplitMerge(t, vals)
	})
}

// The split and merge of one 1 MiB chunk of bf16 weights (512 Ki values).
func BenchmarkSplit2(b *testing.B) {
	vals := bf16Weights(benchChunk, 100)
	m := len(vals) / 2
	e, s := make([]byte, m), make([]byte, m)
	for _, impl := range []struct {
		name string
		f    func(e, s, vals []byte)
	}{{"generic", split2Generic}, {"asm", split2}} {
		b.Run(impl.name, func(b *testing.B) {
			if impl.name == "asm" && !useAVX2 {
				b.Skip("no AVX2")
			}
			b.SetBytes(int64(len(vals)))
			for b.Loop() {
				impl.f(e, s, vals)
			}
		})
	}
}

func BenchmarkMerge2(b *testing.B) {
	vals := bf16Weights(benchChunk, 100)
	m := len(vals) / 2
	e, s := make([]byte, m), make([]byte, m)
	split2Generic(e, s, vals)
	dst := make([]byte, 2*m)
	for _, impl := range []struct {
		name string
		f    func(dst, e, s []byte)
	}{{"generic", merge2Generic}, {"asm", merge2}} {
		b.Run(impl.name, func(b *testing.B) {
			if impl.name == "asm" && !useAVX2 {
				b.Skip("no AVX2")
			}
			b.SetBytes(int64(len(dst)))
			for b.Loop() {
				impl.f(dst, e, s)
			}
		})
	}
}
