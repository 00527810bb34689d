package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"citadelfs/index"
)

// Every check run leaves one record in the index, which survives a reopen;
// a cancelled run leaves the previous record alone.
func TestCheckRecordRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := Init(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Second); return now }
	r, err := Open(dir, Options{PackSize: 1 << 20, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { r.Close() }()
	if lc, err := r.LastCheck(); err != nil || lc != nil {
		t.Fatalf("fresh repository: last check %+v, %v; want none", lc, err)
	}
	snapshotRandomFile(t, r, "f.bin", 2<<20, 7)

	// A structural check that passes.
	if rep, err := r.Check(ctx, CheckOptions{}); err != nil || !rep.OK() {
		t.Fatalf("check: %v %v", err, rep)
	}
	lc, err := r.LastCheck()
	if err != nil || lc == nil || lc.Result != index.CheckOK || lc.Errors != 0 || lc.FirstError != "" || lc.ReadData ||
		lc.Time.IsZero() || lc.Duration <= 0 {
		t.Fatalf("after a passing check: %+v, %v", lc, err)
	}

	// Flip a byte in the largest pack: check --read-data --subset 99%
	// finds it, and the record says so, surviving a reopen.
	packs, _ := index.ListPackFiles(dir)
	sort.Slice(packs, func(i, j int) bool { return packs[i].Size > packs[j].Size })
	p := index.PackPath(dir, packs[0].ID)
	orig, _ := os.ReadFile(p)
	b := append([]byte(nil), orig...)
	b[len(b)/2] ^= 0x40
	os.WriteFile(p, b, 0o600)
	rep, err := r.Check(ctx, CheckOptions{ReadData: true, Subset: 0.99}) // every pack of a few
	if err != nil || rep.OK() {
		t.Fatalf("check of a flipped byte: %v %+v", err, rep)
	}
	r.Close()
	if r, err = Open(dir, Options{Now: clock}); err != nil {
		t.Fatal(err)
	}
	lc, err = r.LastCheck()
	if err != nil || lc == nil {
		t.Fatalf("after reopen: %+v, %v", lc, err)
	}
	if lc.Result != index.CheckErrors || lc.Errors != len(rep.Problems) || lc.FirstError != rep.Problems[0] || !lc.ReadData || lc.Subset != 0.99 {
		t.Fatalf("record %+v, want errors %d first %q", lc, len(rep.Problems), rep.Problems[0])
	}
	failed := *lc

	// A cancelled check records nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Check(cctx, CheckOptions{ReadData: true}); err == nil {
		t.Fatal("cancelled check returned no error")
	}
	if lc, _ := r.LastCheck(); lc == nil || *lc != failed {
		t.Fatalf("cancelled check replaced the record: %+v, want %+v", lc, failed)
	}

	// Repaired by hand. A check that does not read the pack cannot know:
	// the damaged copy stays quarantined, and a structural check names it.
	os.WriteFile(p, orig, 0o600)
	if rep, err := r.Check(ctx, CheckOptions{}); err != nil || rep.OK() || !strings.Contains(rep.Problems[0], "quarantined") {
		t.Fatalf("structural check after a repair by hand: %v %+v; want the quarantined chunk named", err, rep)
	}
	if lc, _ := r.LastCheck(); lc == nil || lc.Result != index.CheckErrors {
		t.Fatalf("structural check over a quarantined chunk recorded %+v", lc)
	}
	// A full read-back that passes lifts the quarantine and replaces it.
	if rep, err := r.Check(ctx, CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check after repair: %v %+v", err, rep)
	}
	if lc, _ := r.LastCheck(); lc == nil || lc.Result != index.CheckOK || lc.Errors != 0 || lc.FirstError != "" || !lc.Time.After(failed.Time) {
		t.Fatalf("after repair: %+v", lc)
	}
	if rep, err := r.Check(ctx, CheckOptions{}); err != nil || !rep.OK() {
		t.Fatalf("structural check after the quarantine was lifted: %v %+v", err, rep)
	}
	n := 0
	r.idx.KV.Scan(index.CheckKey(), index.PrefixEnd(index.CheckKey()), func(_, _ []byte) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d check records, want 1", n)
	}
}

func TestCheckRecordErrorIsOneBoundedLine(t *testing.T) {
	long := "pack 1a2b:\nblob\t" + strings.Repeat("é", 400)
	got := OneLine(long, MaxCheckError)
	if strings.ContainsAny(got, "\n\t") || len(got) > MaxCheckError || !strings.HasPrefix(got, "pack 1a2b: blob é") ||
		!strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Fatalf("oneLine = %q (%d bytes)", got, len(got))
	}
	if got := OneLine("short", MaxCheckError); got != "short" {
		t.Fatalf("OneLine(short) = %q", got)
	}
}

// Which record a new check run keeps: found errors stand until a check
// covering them passes, and a check that could not run proves nothing.
func TestCheckRecordReplaces(t *testing.T) {
	structural := CheckRecord{Result: index.CheckOK}
	full := CheckRecord{Result: index.CheckOK, ReadData: true}
	subset := CheckRecord{Result: index.CheckOK, ReadData: true, Subset: 0.1}
	failed := CheckRecord{Result: index.CheckFailed}
	errFull := CheckRecord{Result: index.CheckErrors, ReadData: true, Errors: 1}
	errStructural := CheckRecord{Result: index.CheckErrors, Errors: 1}
	unknown := CheckRecord{Result: index.CheckUnknown}
	for _, tc := range []struct {
		name      string
		new, prev CheckRecord
		want      bool
	}{
		{"pass over pass", subset, full, true},
		{"failed over pass", failed, structural, true},
		{"errors over errors", errStructural, errFull, true},
		{"full pass clears read errors", full, errFull, true},
		{"subset pass keeps read errors", subset, errFull, false},
		{"structural pass keeps read errors", structural, errFull, false},
		{"failed run keeps errors", failed, errStructural, false},
		{"structural pass clears structural errors", structural, errStructural, true},
		{"full pass clears unknown", full, unknown, true},
		{"subset pass keeps unknown", subset, unknown, false},
		{"structural pass keeps unknown", structural, unknown, false},
		{"failed run keeps unknown", failed, unknown, false},
		{"errors replace unknown", errStructural, unknown, true},
	} {
		if got := checkReplaces(&tc.new, &tc.prev); got != tc.want {
			t.Errorf("%s: replaces = %v, want %v", tc.name, got, tc.want)
		}
	}
}
