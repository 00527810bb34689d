package index

import (
	"testing"
	"time"
)

// A quarantine record is in force only while the index serves the blob
// from the damaged pack, and goes with the pack.
func TestQuarantineFollowsTheIndex(t *testing.T) {
	r := newTestRepo(t)
	a, b := []byte("chunk a"), []byte("chunk b")
	p1, _ := writePack(t, r, a, b)
	at := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
	if err := r.Quarantine([]Damaged{{Pack: p1, Blob: Hash(a), Time: at, Reason: "fails its hash check"}}); err != nil {
		t.Fatal(err)
	}
	q, err := r.QuarantinedInUse()
	if err != nil || len(q) != 1 || q[Hash(a)].Pack != p1 || !q[Hash(a)].Time.Equal(at) || q[Hash(a)].Reason != "fails its hash check" {
		t.Fatalf("in use: %+v %v", q, err)
	}
	// A good copy stored again elsewhere: the record no longer applies.
	p2, _ := writePack(t, r, a)
	if q, _ := r.QuarantinedInUse(); len(q) != 0 {
		t.Fatalf("after a good copy in %s: still in use %+v", p2.Short(), q)
	}
	if recs, _ := r.PackQuarantine(p1); len(recs) != 1 {
		t.Fatalf("the damaged pack's record went before the pack: %+v", recs)
	}
	// The damaged pack removed: its records go with it.
	if err := r.DeleteBlobs([]ID{Hash(b)}); err != nil {
		t.Fatal(err)
	}
	if err := r.RemovePack(p1); err != nil {
		t.Fatal(err)
	}
	n := 0
	r.QuarantineRecords(func(Damaged) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d records left after RemovePack", n)
	}
}

// FuzzDecodeDamaged: records are read from disk; anything decodes or is
// an error, never a panic, and what decodes encodes back the same.
func FuzzDecodeDamaged(f *testing.F) {
	var p, b ID
	p[0], b[0] = 1, 2
	f.Add(quarantineKey(p, b), encodeDamaged(Damaged{Pack: p, Blob: b, Time: time.Unix(5, 0), Reason: "bad"}))
	f.Add([]byte{prefixQuarantine}, []byte{})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		d, err := DecodeDamaged(k, v)
		if err != nil {
			return
		}
		if got := encodeDamaged(d); string(got) != string(v) || string(quarantineKey(d.Pack, d.Blob)) != string(k) {
			t.Fatalf("round trip: %x %x -> %+v -> %x", k, v, d, got)
		}
	})
}
