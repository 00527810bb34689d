// Package testutil is the one harness for what the tests of several
// packages need from the host: root, /dev/fuse, setpriv and a directory
// another user can reach, and a buffer a running command writes while the
// test reads it. cmd/citadelfs, fs, snapshot, index and the end-to-end
// tests/ import it from their _test.go files only; it imports no project
// package, so any package's tests may use it.
//
// A missing privilege or tool is a skip with the reason, never a failure:
// make test runs as root with /dev/fuse (.ci/run), a developer's
// go test ./... without them still runs everything else.
package testutil

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Nobody is the uid and gid the tests run a second user as.
const Nobody = 65534

// NeedRoot skips t unless the test runs as root; why says what for
// ("to mount a tmpfs").
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root " + why)
	}
}

// NeedFUSE skips t unless it can mount FUSE itself: root (mount(2)
// directly, no fusermount) and /dev/fuse.
func NeedFUSE(t testing.TB) {
	t.Helper()
	NeedRoot(t, "to mount FUSE")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

// Setpriv returns the path of setpriv(1), which runs a command as Nobody,
// or skips t without it.
func Setpriv(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	return p
}

// AsNobody is the setpriv arguments that run name with args as Nobody,
// with no supplementary groups.
func AsNobody(name string, args ...string) []string {
	return append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", name}, args...)
}

// NobodyDir is a new t.TempDir() that Nobody can reach: it and every
// directory above it up to os.TempDir() are made 0755 (go test's temp
// directories are 0700).
func NobodyDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// SyncBuffer is an io.Writer a command (or a daemon's goroutine) writes
// while the test reads String at any time.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SilentEndpoint listens on 127.0.0.1 and accepts every connection but
// never reads from it or answers: a hung server, or a proxy that
// black-holes requests. It returns "http://host:port"; the listener and
// the connections it holds close when the test ends.
func SilentEndpoint(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return "http://" + ln.Addr().String()
}
