package daemon

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Runner runs one client's request inside the daemon and returns its exit
// code. stdout and stderr stream to the client as they are written. ctx is
// cancelled when the client is interrupted or goes away, or the server
// closes. A Runner recovers its own panics (the server does not).
type Runner func(ctx context.Context, req Request, stdout, stderr io.Writer) int

// Options configure a Server.
type Options struct {
	// After, when set, runs after every request and before its exit code
	// goes back (the mount refreshes what the command changed, so the
	// client sees a new snapshot in latest/ by the time it returns).
	After func()
	// Log receives refused clients, bad requests and each request run.
	Log *slog.Logger
}

// Server serves the control socket.
type Server struct {
	run  Runner
	o    Options
	path string
	ln   *net.UnixListener

	ctx    context.Context // requests run under it; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Listen listens on <repo>/daemon.sock and serves each client with run.
// The caller holds the repository's lock, so a socket already there is
// stale and is replaced.
func Listen(repo string, run Runner, o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	path := SocketPath(repo)
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("daemon: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("daemon: remove stale socket: %w", err)
		}
	}
	addr, done, err := sockAddr(path)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	defer done()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("daemon: listen on %s: %w", path, err)
	}
	// Close would unlink the /proc/self/fd alias of a long path, not the
	// socket: we remove it by its real name ourselves.
	ln.SetUnlinkOnClose(false)
	// Root only. A client racing this chmod is still refused by the
	// peer-credential check in handle.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("daemon: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{run: run, o: o, path: path, ln: ln, ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.o.Log.Error("daemon: accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			s.handle(conn)
		}()
	}
}

// Close stops accepting, cancels the requests still running and waits up
// to grace for them to report their exit codes; then the socket is removed.
func (s *Server) Close(grace time.Duration) {
	s.ln.Close()
	os.Remove(s.path)
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.o.Log.Warn("daemon: commands still running at shutdown", "waited", grace)
	}
}

// handle serves one client: read the request, run it with the client's
// streams, send the exit code.
func (s *Server) handle(conn *net.UnixConn) {
	if err := checkPeer(conn); err != nil {
		s.o.Log.Warn("daemon: refused a client", "err", err)
		return
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := readFrame(conn)
	if err != nil || typ != frameRequest {
		s.o.Log.Warn("daemon: bad request", "err", err, "type", typ)
		return
	}
	conn.SetReadDeadline(time.Time{})
	var req Request
	if err := json.Unmarshal(p, &req); err != nil {
		s.o.Log.Warn("daemon: bad request", "err", err)
		return
	}

	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// The client sends nothing after the request: EOF or an error means
	// it was interrupted or went away.
	go func() {
		var b [1]byte
		conn.Read(b[:])
		cancel()
	}()

	out := &frameWriter{conn: conn}
	stdout, stderr := out.stream(frameStdout), out.stream(frameStderr)
	start := time.Now()
	code := s.run(ctx, req, stdout, stderr)
	if s.o.After != nil {
		s.o.After()
	}
	// A command that failed for its client is worth a look in the
	// daemon's log too: WARN, where a success is INFO.
	level := slog.LevelInfo
	if code != 0 {
		level = slog.LevelWarn
	}
	s.o.Log.Log(context.Background(), level, "daemon: ran a command for a client", "args", req.Args, "code", code, "took", time.Since(start).Round(time.Millisecond))
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
	out.frame(frameExit, b[:])
}

// checkPeer admits only clients running as the daemon's own user (root):
// the socket's mode says the same, this holds even if the mode is changed.
func checkPeer(conn *net.UnixConn) error {
	cred, err := peerCred(conn)
	if err != nil {
		return err
	}
	if int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("daemon: client uid %d (pid %d) is not %d", cred.Uid, cred.Pid, os.Geteuid())
	}
	return nil
}
