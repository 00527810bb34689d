package fs

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// resultBytes reads a ReadResult the way go-fuse writes it: through
// Slices when it has them (no copy), else Bytes; then calls Done.
func resultBytes(t *testing.T, res fuse.ReadResult) []byte {
	t.Helper()
	defer res.Done()
	if ws, ok := res.(interface {
		Slices() ([][]byte, fuse.Status)
	}); ok {
		s, st := ws.Slices()
		if !st.Ok() {
			t.Fatal(st)
		}
		out := bytes.Join(s, nil)
		if len(out) != res.Size() {
			t.Fatalf("slices hold %d bytes, Size says %d", len(out), res.Size())
		}
		return out
	}
	b, st := res.Bytes(make([]byte, res.Size()))
	if !st.Ok() {
		t.Fatal(st)
	}
	return bytes.Clone(b)
}

// Sequential and random reads answered from prefetched blocks without a
// copy give the file's bytes, across block boundaries and at the end, from
// several readers at once, and every block goes back to the budget
// (checked by newTestReader's cleanup) once the results are Done.
func TestReadaheadResultZeroCopyCorrect(t *testing.T) {
	data := pattern(9<<20 + 5)
	_, r, _, _ := newTestReader(t, data, Options{ReadaheadBlock: 256 << 10, ReadaheadMemory: 2 << 20})
	var wg sync.WaitGroup
	var mu sync.Mutex
	sliced := 0
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			off := int64(0)
			for range 300 {
				if g == 3 {
					off = rng.Int64N(int64(len(data)))
				}
				n := 1 + rng.IntN(600<<10)
				end := min(off+int64(n), int64(len(data)))
				res, err := r.readResult(context.Background(), make([]byte, end-off), off)
				if err != nil {
					t.Error(err)
					return
				}
				if _, ok := res.(*blockResult); ok {
					mu.Lock()
					sliced++
					mu.Unlock()
				}
				if got := resultBytes(t, res); !bytes.Equal(got, data[off:end]) {
					t.Errorf("reader %d: wrong bytes at %d+%d (got %d)", g, off, end-off, len(got))
					return
				}
				off = end
				if off >= int64(len(data)) {
					off = 0
				}
			}
		}()
	}
	wg.Wait()
	if sliced == 0 {
		t.Error("no read was answered from the prefetched blocks")
	}
}

// A result whose Done never comes (the kernel write still holds it when
// the file is closed) must not leak the readahead budget.
func TestReadaheadResultCloseBeforeDone(t *testing.T) {
	data := pattern(4 << 20)
	_, r, _, _ := newTestReader(t, data, Options{ReadaheadBlock: 256 << 10})
	ctx := context.Background()
	buf := make([]byte, 256<<10)
	var held fuse.ReadResult
	for off := int64(0); off < 2<<20; off += int64(len(buf)) {
		res, err := r.readResult(ctx, buf, off)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := res.(*blockResult); ok && held == nil {
			held = res
			continue
		}
		res.Done()
	}
	if held == nil {
		t.Fatal("no read was answered from the prefetched blocks")
	}
	r.close()
	// The bytes stay valid for the holder even so.
	s, _ := held.(*blockResult).Slices()
	off := int64(-1)
	for i := int64(0); i+int64(len(s[0])) <= int64(len(data)); i += int64(len(buf)) {
		if bytes.Equal(data[i:i+int64(len(s[0]))], s[0]) {
			off = i
		}
	}
	if off < 0 {
		t.Error("held result's bytes changed after close")
	}
	held.Done() // late Done: harmless
}
