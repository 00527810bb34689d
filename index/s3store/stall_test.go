package s3store_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"citadelfs/index"
	"citadelfs/index/s3store"
	"citadelfs/internal/testutil"
)

// stallTimeout is the stores' Timeout in these tests; with stallRetries
// attempts the old per-attempt wait alone took stallRetries*stallTimeout.
const (
	stallTimeout = 200 * time.Millisecond
	stallRetries = 10
)

// lastModified is a GET's Last-Modified (minio-go refuses an answer
// without one).
var lastModified = time.Now().UTC().Format(http.TimeFormat)

func stallStore(t *testing.T, endpoint string) *s3store.Store {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	s, err := s3store.New(s3store.Config{Bucket: "bucket", Endpoint: endpoint, PathStyle: true, Timeout: stallTimeout, Retries: stallRetries})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantStall checks that err is the store's stall error and came well
// before the retries alone would have ended the call.
func wantStall(t *testing.T, what string, start time.Time, err error) {
	t.Helper()
	took := time.Since(start)
	if !errors.Is(err, index.ErrStoreUnavailable) || !strings.Contains(err.Error(), "no answer from the store for") {
		t.Fatalf("%s: %v, want the stall error (store unavailable)", what, err)
	}
	if took >= stallRetries*stallTimeout {
		t.Fatalf("%s: failed after %s: the retries ran out before the watch ended it", what, took)
	}
}

// A store that accepts connections and never answers fails each call
// after one Timeout, whatever the retries, with a one-line error.
func TestS3StoreThatNeverAnswers(t *testing.T) {
	endpoint := testutil.SilentEndpoint(t)
	s := stallStore(t, endpoint)
	calls := []struct {
		what string
		do   func() error
	}{
		{"stat", func() error { _, err := s.Stat("citadel.json"); return err }},
		{"read", func() error { _, err := s.ReadRange("packs/00/p", 0, 100, nil); return err }},
		{"put", func() error { return s.Put("snapshots/x", []byte("a manifest")) }},
		{"put of 8 MiB", func() error { return s.Put("packs/00/q", make([]byte, 8<<20)) }},
		{"list", func() error { return s.List("snapshots/", func(string, int64) error { return nil }) }},
		{"delete", func() error { return s.Delete("locks/x") }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.do()
		wantStall(t, c.what, start, err)
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s: error of more than one line: %q", c.what, err)
		}
	}
}

// A GET whose body stops half way fails after one Timeout instead of
// waiting for the rest for ever.
func TestS3ReadBodyStopsHalfway(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(1<<20))
		w.Header().Set("Content-Range", "bytes 0-1048575/1048576")
		w.Header().Set("ETag", `"x"`)
		w.Header().Set("Last-Modified", lastModified)
		w.WriteHeader(http.StatusPartialContent)
		w.Write(make([]byte, 64<<10))
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release)
	s := stallStore(t, srv.URL)
	start := time.Now()
	_, err := s.ReadRange("packs/00/p", 0, 1<<20, nil)
	wantStall(t, "read", start, err)
}

// A body that keeps coming, however slowly, is progress: a GET that
// takes several Timeouts in all but never pauses for one succeeds.
func TestS3SlowReadIsNotAStall(t *testing.T) {
	const pieces, gap = 8, stallTimeout / 3 // 8 gaps: 2.7 Timeouts in all
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(pieces*1000))
		w.Header().Set("Content-Range", "bytes 0-7999/8000")
		w.Header().Set("ETag", `"x"`)
		w.Header().Set("Last-Modified", lastModified)
		w.WriteHeader(http.StatusPartialContent)
		for i := range pieces {
			time.Sleep(gap)
			w.Write(bytes.Repeat([]byte{byte('a' + i)}, 1000))
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	s := stallStore(t, srv.URL)
	start := time.Now()
	b, err := s.ReadRange("packs/00/p", 0, pieces*1000, nil)
	if err != nil {
		t.Fatalf("slow read: %v", err)
	}
	if time.Since(start) < 2*stallTimeout {
		t.Fatalf("set-up: the read took %s, not more than the timeout", time.Since(start))
	}
	for i := range pieces {
		if b[i*1000] != byte('a'+i) || b[i*1000+999] != byte('a'+i) {
			t.Fatalf("slow read: wrong bytes in piece %d", i)
		}
	}
}

// A PUT whose body the store takes in slowly, for longer than the
// Timeout in all, succeeds: each part of the body handed to the
// connection is progress. (Only the last bytes, in the sockets' buffers
// once the body is handed over, must reach the store within one
// Timeout; here up to ~10 MB at 20 MB/s against 1 s.)
func TestS3SlowPutIsNotAStall(t *testing.T) {
	const size, step, gap = 24 << 20, 1 << 20, 50 * time.Millisecond // ~1.2 s
	// The handler's count of the bytes, read once the PUT is answered.
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, step)
		for {
			time.Sleep(gap)
			n, err := io.ReadFull(r.Body, buf)
			got.Add(int64(n))
			if err != nil {
				break
			}
		}
		w.Header().Set("ETag", `"x"`)
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	const timeout = time.Second
	s, err := s3store.New(s3store.Config{Bucket: "bucket", Endpoint: srv.URL, PathStyle: true, Timeout: timeout, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Put("packs/00/q", make([]byte, size)); err != nil {
		t.Fatalf("slow put: %v", err)
	}
	if got.Load() != size {
		t.Fatalf("slow put: the server got %d bytes, want %d", got.Load(), size)
	}
	if took := time.Since(start); took < timeout {
		t.Fatalf("set-up: the put took %s, not more than the timeout", took)
	}
}
