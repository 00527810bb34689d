package index

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// Samples and events come back in time order (events of one time in
// their sequence), a trim drops only what is older than its cut-offs, and
// LatestSample is the newest sample's time.
func TestHistoryStore(t *testing.T) {
	kv, err := OpenKV(t.TempDir(), KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	h := kv.History()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	if _, found, err := h.LatestSample(); err != nil || found {
		t.Fatalf("empty store: found %v, %v", found, err)
	}
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		evs := []HistoryEvent{
			{Time: at, Seq: 0, Name: []byte("r\x00b"), Value: []byte(fmt.Sprintf("e%d.0", i))},
			{Time: at, Seq: 1, Name: []byte("r\x00a"), Value: []byte(fmt.Sprintf("e%d.1", i))},
		}
		if err := h.Record(at, []byte(fmt.Sprintf("s%d", i)), evs); err != nil {
			t.Fatal(err)
		}
	}
	values := func(scan func(fn func(k, v []byte) error) error) (out []string) {
		if err := scan(func(_, v []byte) error { out = append(out, string(v)); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := func(fn func(k, v []byte) error) error { return h.Samples(t0, t0.Add(time.Hour), fn) }
	if got := fmt.Sprint(values(all)); got != "[s0 s1 s2 s3 s4]" {
		t.Errorf("samples %s", got)
	}
	rev := func(fn func(k, v []byte) error) error {
		return h.Events(t0.Add(3*time.Minute), t0.Add(time.Hour), true, fn)
	}
	if got := fmt.Sprint(values(rev)); got != "[e4.1 e4.0 e3.1 e3.0]" {
		t.Errorf("events newest first from 10:03: %s (sequence, not name, orders one time)", got)
	}
	var first []string
	h.Events(t0, t0.Add(time.Hour), false, func(_, v []byte) error { first = append(first, string(v)); return io.EOF })
	if fmt.Sprint(first) != "[e0.0]" {
		t.Errorf("io.EOF did not stop the scan: %v", first)
	}
	if at, found, err := h.LatestSample(); err != nil || !found || !at.Equal(t0.Add(4*time.Minute)) {
		t.Errorf("latest sample %v %v %v", at, found, err)
	}
	if err := h.Trim(t0.Add(2*time.Minute), t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(values(all)); got != "[s2 s3 s4]" {
		t.Errorf("samples after trim %s", got)
	}
	fwd := func(fn func(k, v []byte) error) error { return h.Events(t0, t0.Add(time.Hour), false, fn) }
	if got := fmt.Sprint(values(fwd)); got != "[e4.0 e4.1]" {
		t.Errorf("events after trim %s", got)
	}
}
