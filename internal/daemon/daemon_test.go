package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Real unix sockets in a temp dir; the Runner stands in for cmd's commands.

func listen(t *testing.T, repo string, run Runner, o Options) *Server {
	t.Helper()
	if err := os.MkdirAll(repo, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(repo, run, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(5 * time.Second) })
	return s
}

// echo writes its arguments to stdout, "progress" to stderr, and exits
// with len(args).
func echo(ctx context.Context, req Request, stdout, stderr io.Writer) int {
	fmt.Fprintln(stdout, strings.Join(req.Args, " ")+" in "+req.Cwd)
	fmt.Fprint(stderr, "progress\r")
	return len(req.Args)
}

func TestCallRunsRequest(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	var after atomic.Int32
	listen(t, repo, echo, Options{After: func() { after.Add(1) }})
	fi, err := os.Stat(SocketPath(repo))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket: %v %v", fi.Mode(), err)
	}
	var out, errb bytes.Buffer
	code, err := Call(context.Background(), repo, Request{Args: []string{"a", "b", "c"}, Cwd: "/w"}, &out, &errb, time.Second)
	if err != nil || code != 3 || out.String() != "a b c in /w\n" || errb.String() != "progress\r" {
		t.Fatalf("code %d err %v out %q err %q", code, err, out.String(), errb.String())
	}
	if after.Load() != 1 {
		t.Errorf("After ran %d times", after.Load())
	}
}

func TestCallWithoutDaemon(t *testing.T) {
	repo := t.TempDir()
	if _, err := Call(context.Background(), repo, Request{}, io.Discard, io.Discard, time.Second); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("no socket: %v", err)
	}
	// A killed daemon's socket: refused, and left alone.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: SocketPath(repo), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Call(context.Background(), repo, Request{}, io.Discard, io.Discard, time.Second); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("stale socket: %v", err)
	}
	if _, err := os.Lstat(SocketPath(repo)); err != nil {
		t.Errorf("the client removed the socket: %v", err)
	}
	// A new server replaces it.
	listen(t, repo, echo, Options{})
	if code, err := Call(context.Background(), repo, Request{Args: []string{"x"}}, io.Discard, io.Discard, time.Second); err != nil || code != 1 {
		t.Errorf("after replacing a stale socket: %d %v", code, err)
	}
}

// blocker runs until its ctx ends and reports how.
func blocker(started chan<- struct{}, ended chan<- struct{}) Runner {
	return func(ctx context.Context, req Request, stdout, stderr io.Writer) int {
		fmt.Fprintln(stdout, "started")
		started <- struct{}{}
		<-ctx.Done()
		fmt.Fprintln(stderr, "stopping")
		close(ended)
		return 130
	}
}

func TestInterruptedClientCancelsRequest(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	started, ended := make(chan struct{}, 1), make(chan struct{})
	listen(t, repo, blocker(started, ended), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	var out, errb bytes.Buffer
	code, err := Call(ctx, repo, Request{Args: []string{"block"}}, &out, &errb, 3*time.Second)
	if err != nil || code != 130 || out.String() != "started\n" || errb.String() != "stopping\n" {
		t.Errorf("code %d err %v out %q err %q: the last words and code must reach the client", code, err, out.String(), errb.String())
	}
}

// A client that disappears (kill -9) must not leave its request running.
func TestVanishedClientCancelsRequest(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	started, ended := make(chan struct{}, 1), make(chan struct{})
	listen(t, repo, blocker(started, ended), Options{})
	conn, err := dial(SocketPath(repo))
	if err != nil {
		t.Fatal(err)
	}
	writeFrame(conn, frameRequest, []byte(`{"v":1,"args":["block"],"cwd":"/"}`))
	<-started
	conn.Close()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("request still running after its client went away")
	}
}

func TestCloseCancelsRunningRequests(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	started, ended := make(chan struct{}, 1), make(chan struct{})
	s := listen(t, repo, blocker(started, ended), Options{})
	res := make(chan int, 1)
	go func() {
		code, _ := Call(context.Background(), repo, Request{}, io.Discard, io.Discard, time.Second)
		res <- code
	}()
	<-started
	s.Close(5 * time.Second)
	if code := <-res; code != 130 {
		t.Errorf("client of a closing server got %d", code)
	}
	if _, err := os.Lstat(SocketPath(repo)); !errors.Is(err, os.ErrNotExist) {
		t.Error("socket left after Close")
	}
}

// sun_path holds 108 bytes; repositories can live deeper than that.
func TestLongRepoPath(t *testing.T) {
	repo := filepath.Join(t.TempDir(), strings.Repeat("deep-directory-name/", 6), "repo")
	if len(SocketPath(repo)) < 110 {
		t.Fatalf("path %d bytes is not long enough for the test", len(SocketPath(repo)))
	}
	listen(t, repo, echo, Options{})
	if code, err := Call(context.Background(), repo, Request{Args: []string{"x"}}, io.Discard, io.Discard, time.Second); err != nil || code != 1 {
		t.Errorf("long path: %d %v", code, err)
	}
}

// Output larger than a frame arrives whole, in order.
func TestLargeOutput(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	big := bytes.Repeat([]byte("0123456789"), 3<<20/10+7)
	listen(t, repo, func(ctx context.Context, req Request, stdout, stderr io.Writer) int {
		stdout.Write(big)
		return 0
	}, Options{})
	var out bytes.Buffer
	if code, err := Call(context.Background(), repo, Request{}, &out, io.Discard, time.Second); err != nil || code != 0 || !bytes.Equal(out.Bytes(), big) {
		t.Errorf("code %d err %v, %d bytes of %d", code, err, out.Len(), len(big))
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var b bytes.Buffer
	writeFrame(&b, frameStdout, []byte("hello"))
	writeFrame(&b, frameExit, []byte{0, 0, 0, 3})
	typ, p, err := readFrame(&b)
	if err != nil || typ != frameStdout || string(p) != "hello" {
		t.Errorf("%c %q %v", typ, p, err)
	}
	readFrame(&b)
	if _, _, err := readFrame(&b); err != io.EOF {
		t.Errorf("end: %v", err)
	}
	b.Write([]byte{'o', 0xff, 0xff, 0xff, 0xff})
	if _, _, err := readFrame(&b); err == nil {
		t.Error("oversized frame accepted")
	}
}
