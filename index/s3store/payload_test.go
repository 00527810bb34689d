package s3store_test

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"citadelfs/index/s3store"
)

// Over plain http a PUT's body is not signed (no SHA-256 of every byte,
// no streaming chunk signatures) but carries its Content-MD5, which RGW
// checks: both for a small object (Put) and for a pack buffered in
// pieces (Create, Write, Commit).
func TestS3PutUnsignedWithContentMD5(t *testing.T) {
	type req struct {
		sha, md5, enc string
		body          []byte
	}
	var mu sync.Mutex
	var got []req
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, req{r.Header.Get("X-Amz-Content-Sha256"), r.Header.Get("Content-Md5"), r.Header.Get("Content-Encoding"), b})
		mu.Unlock()
		w.Header().Set("ETag", `"x"`)
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	s, err := s3store.New(s3store.Config{Bucket: "bucket", Endpoint: srv.URL, PathStyle: true, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	small := []byte("a manifest")
	if err := s.Put("snapshots/x", small); err != nil {
		t.Fatal(err)
	}
	w, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	pack := bytes.Repeat([]byte("0123456789abcdef"), 200000) // 3.2 MB: 4 pieces
	for b := pack; len(b) > 0; b = b[min(len(b), 777777):] {
		w.Write(b[:min(len(b), 777777)])
	}
	if err := w.Commit("packs/00/p.pack", int64(len(pack))); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	for i, want := range [][]byte{small, pack} {
		r := got[i]
		sum := md5.Sum(want)
		if r.sha != "UNSIGNED-PAYLOAD" || r.md5 != base64.StdEncoding.EncodeToString(sum[:]) || r.enc != "" || !bytes.Equal(r.body, want) {
			t.Errorf("request %d: x-amz-content-sha256 %q, Content-MD5 %q, Content-Encoding %q, %d bytes; want UNSIGNED-PAYLOAD, the body's MD5, none, %d bytes",
				i, r.sha, r.md5, r.enc, len(r.body), len(want))
		}
	}
}
