package s3store_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"citadelfs/index"
	"citadelfs/index/s3store"
	"citadelfs/index/storetest"
	"citadelfs/internal/cephtest"
)

func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }

// newStore makes a fresh bucket on the real RGW and a store in it under
// prefix, with the credentials in the environment.
func newStore(t *testing.T, prefix string) *s3store.Store {
	t.Helper()
	e := cephtest.Need(t)
	t.Setenv("AWS_ACCESS_KEY_ID", e.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", e.SecretKey)
	s, err := s3store.New(s3store.Config{Bucket: cephtest.Bucket(t), Prefix: prefix, Endpoint: e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MakeBucket(); err != nil {
		t.Fatal(err)
	}
	return s
}

// The store contract against RGW itself: among the rest, a second PUT of
// a name is refused (If-None-Match: * is honoured), and ranges past the
// end are io.ErrUnexpectedEOF.
func TestS3StoreContract(t *testing.T) {
	storetest.Contract(t, newStore(t, "repo/"))
}

// Two prefixes in one bucket are two repositories: neither lists the
// other's objects.
func TestS3StorePrefixesAreSeparate(t *testing.T) {
	a := newStore(t, "a/")
	if err := a.Put("packs/x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	n := 0
	a.List("", func(name string, _ int64) error {
		if name != "packs/x" {
			t.Errorf("listed %q", name)
		}
		n++
		return nil
	})
	if n != 1 {
		t.Fatalf("listed %d objects, want 1", n)
	}
}

// Credentials come from the shared credentials file under AWS_PROFILE
// when the variables are not set; a wrong secret is an error that does
// not print it.
func TestS3StoreCredentialsFileAndSecrecy(t *testing.T) {
	e := cephtest.Need(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "credentials")
	os.WriteFile(file, []byte("[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n[ceph]\naws_access_key_id = "+
		e.AccessKey+"\naws_secret_access_key = "+e.SecretKey+"\n"), 0o600)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	t.Setenv("AWS_PROFILE", "ceph")
	bucket := cephtest.Bucket(t)
	s, err := s3store.New(s3store.Config{Bucket: bucket, Endpoint: e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MakeBucket(); err != nil {
		t.Fatalf("with the profile's credentials: %v", err)
	}
	if _, err := s.Stat("nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat: %v", err)
	}
	const secret = "averysecretsecretthatmustnotleak0000000"
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", e.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	bad, err := s3store.New(s3store.Config{Bucket: bucket, Endpoint: e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Put("x", []byte("x"))
	if err == nil {
		t.Fatal("a wrong secret was accepted")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error prints the secret: %v", err)
	}
	if errors.Is(err, index.ErrObjectExists) {
		t.Fatalf("a refused signature read as 'exists': %v", err)
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in, bucket, prefix string
		ok, err            bool
	}{
		{"s3://b/p/q", "b", "p/q/", true, false},
		{"s3://b", "b", "", true, false},
		{"s3://b/", "b", "", true, false},
		{"s3:///p", "", "", true, true},
		{"/srv/repo", "", "", false, false},
	} {
		b, p, ok, err := s3store.ParseURL(c.in)
		if b != c.bucket || p != c.prefix || ok != c.ok || (err != nil) != c.err {
			t.Errorf("%s: %q %q %v %v", c.in, b, p, ok, err)
		}
	}
}

// Packs of several pieces, one after another from one store (the second
// reuses the first's pieces), each read back whole from RGW: reusing a
// piece never changes an object already put.
func TestS3StoreStreamedPacksReusePieces(t *testing.T) {
	s := newStore(t, "")
	var want [][]byte
	for i := range 3 {
		data := make([]byte, 2<<20+1000*i+17)
		for j := range data {
			data[j] = byte(j*(i+3) + i)
		}
		w, err := s.Create()
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 4 << 20 / 3 {
			w.Write(data[off:min(off+4<<20/3, len(data))])
		}
		if err := w.Commit(fmt.Sprintf("packs/0%d/p", i), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		want = append(want, data)
	}
	for i, data := range want {
		got, err := s.ReadRange(fmt.Sprintf("packs/0%d/p", i), 0, len(data), nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("pack %d read back wrong (%d bytes): %v", i, len(got), err)
		}
	}
	// The same name again: the conditional PUT is refused, which a
	// pack's commit reports as success (same name, same content).
	w, _ := s.Create()
	w.Write(want[0])
	if err := w.Commit("packs/00/p", int64(len(want[0]))); err != nil {
		t.Fatalf("a pack already stored: %v", err)
	}
}
