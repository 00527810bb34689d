// Package storetest is the contract every index.Store must keep, as a test
// any implementation runs against itself (the local directory in index's
// tests, S3 against a real RGW in s3store's): put-if-absent, ranged reads
// with the documented errors, listing by prefix, deletes, and a streamed
// object that is invisible until committed.
package storetest

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"sort"
	"testing"

	"citadelfs/index"
)

// Contract runs the contract against s, which must be empty.
func Contract(t *testing.T, s index.Store) {
	t.Helper()
	if err := s.Put("x/a", []byte("hello world")); err != nil {
		t.Fatalf("put: %v", err)
	}
	if err := s.Put("x/a", []byte("other")); !errors.Is(err, index.ErrObjectExists) {
		t.Fatalf("second put of x/a: %v, want ErrObjectExists", err)
	}
	got, err := s.ReadRange("x/a", 6, 5, nil)
	if err != nil || string(got) != "world" {
		t.Fatalf("read range: %q %v", got, err)
	}
	buf := make([]byte, 64)
	if got, err := s.ReadRange("x/a", 0, 5, buf); err != nil || string(got) != "hello" {
		t.Fatalf("read range into buf: %q %v", got, err)
	}
	if _, err := s.ReadRange("x/a", 6, 10, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read past the end: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := s.ReadRange("x/missing", 0, 1, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read of a missing object: %v, want fs.ErrNotExist", err)
	}
	if n, err := s.Stat("x/a"); err != nil || n != 11 {
		t.Fatalf("stat: %d %v", n, err)
	}
	if _, err := s.Stat("x/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of a missing object: %v, want fs.ErrNotExist", err)
	}

	// A streamed object: invisible until Commit, then whole.
	w, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	chunk := 4096
	if a := w.Align(); a > chunk {
		chunk = a
	}
	for off := 0; off < len(payload); off += chunk {
		end := min(off+chunk, len(payload))
		if _, err := w.Write(payload[off:end]); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := list(t, s, "packs/"); len(err) != 0 {
		t.Fatalf("an uncommitted object is listed: %v", err)
	}
	if err := w.Commit("packs/ab/streamed", int64(len(payload)-100)); err != nil {
		t.Fatalf("commit: %v", err)
	}
	got, err = s.ReadRange("packs/ab/streamed", 0, len(payload)-100, nil)
	if err != nil || !bytes.Equal(got, payload[:len(payload)-100]) {
		t.Fatalf("streamed object read back wrong: %d bytes, %v", len(got), err)
	}
	w2, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	w2.Write(make([]byte, 4096))
	w2.Abort()

	if err := s.Put("x/b/c", []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("xy", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if got, want := list(t, s, "x/"), []string{"x/a", "x/b/c"}; !equal(got, want) {
		t.Fatalf("list x/: %v, want %v", got, want)
	}
	if got, want := list(t, s, "packs/"), []string{"packs/ab/streamed"}; !equal(got, want) {
		t.Fatalf("list packs/: %v, want %v (an aborted object must leave nothing)", got, want)
	}
	if got, want := list(t, s, "nothing/"), []string(nil); !equal(got, want) {
		t.Fatalf("list of an empty prefix: %v", got)
	}
	if err := s.Delete("x/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("x/a"); err != nil {
		t.Fatalf("delete of a missing object: %v", err)
	}
	if _, err := s.Stat("x/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat after delete: %v", err)
	}
	if err := s.Put("x/a", []byte("again")); err != nil {
		t.Fatalf("put after delete: %v", err)
	}
}

func list(t *testing.T, s index.Store, prefix string) []string {
	t.Helper()
	var out []string
	if err := s.List(prefix, func(name string, _ int64) error {
		out = append(out, name)
		return nil
	}); err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
