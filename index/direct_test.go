package index

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// A blob that is not in the page cache is read with O_DIRECT (the pack's
// pages stay out of the cache) into an aligned buffer, at every alignment
// of its offset, the last blob running into the pack's unaligned tail; a
// cached blob is read through the cache; both return the stored bytes.
func TestReadStoredDirect(t *testing.T) {
	r := newTestRepo(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var blobs [][]byte
	for i := range 9 {
		b := make([]byte, directReadMin+rng.IntN(300_000)+i)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		blobs = append(blobs, b)
	}
	id, _ := writePack(t, r, blobs...)
	f, err := os.Open(PackPath(r.Dir, id))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cached := func() uint64 {
		var cs unix.Cachestat_t
		if err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &cs, 0); err != nil {
			t.Skipf("no cachestat(2): %v", err)
		}
		return cs.Cache
	}
	pf, release, err := r.Store.(*LocalStore).packs.acquire(id)
	if err != nil {
		t.Fatal(err)
	}
	direct := pf.direct != nil
	release()
	if !direct {
		t.Skip("the test directory's file system refuses O_DIRECT")
	}
	buf := alignedBuffer(1 << 20)
	for round, want := range []string{"cold", "cached"} {
		if round == 0 {
			if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
				t.Fatal(err)
			}
			if c := cached(); c != 0 {
				t.Skipf("cannot evict the pack from the page cache (%d pages stay)", c)
			}
		}
		for i, b := range blobs {
			ref, err := r.Lookup(Hash(b))
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.ReadStored(ref, buf)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("%s: blob %d at offset %d (mod 4096: %d) read back wrong: %v", want, i, ref.Offset, ref.Offset%4096, err)
			}
		}
		if round == 0 {
			if c := cached(); c != 0 {
				t.Errorf("reading cold blobs put %d pages of the pack in the page cache; want O_DIRECT reads", c)
			}
			// Now cache the pack, as a second reader of the file would.
			if _, err := f.ReadAt(make([]byte, 64<<20), 0); err == nil || cached() == 0 {
				t.Fatalf("could not read the pack into the cache: %v", err)
			}
		}
	}
	// A small buffer or a small blob takes the ordinary path, also right.
	ref, _ := r.Lookup(Hash(blobs[3]))
	if got, err := r.ReadStored(ref, nil); err != nil || !bytes.Equal(got, blobs[3]) {
		t.Fatalf("unaligned buffer: %v", err)
	}
}
