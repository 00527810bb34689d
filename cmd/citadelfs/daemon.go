package main

// The control socket. Pebble admits one process, so while `citadelfs
// mount` runs it owns the repository and every delegable command started
// by a timer or by hand runs inside it, on behalf of the client process.
//
// Protocol (version 1) on the unix stream socket <repo>/daemon.sock, mode
// 0600 and checked with SO_PEERCRED both ways: the daemon admits clients
// of its own uid only (root, so a non-root client can ask it nothing, and
// what a restore may write is never decided for another user), and a
// client sends nothing until the server has proven to run as root or as
// the repository's owner (checkServer). Every message is a frame, one
// type byte, a 4-byte big-endian length and the payload.
//
//	client → daemon  'r' request: JSON daemonRequest (args, cwd, terminal)
//	daemon → client  'o' stdout bytes, 'e' stderr bytes, as the command writes
//	daemon → client  'x' exit code (4-byte big-endian), then the daemon closes
//
// The daemon runs the same command in-process (c.run) with env.daemon set,
// so openRepo returns the open repository, and env.cwd set to the client's
// working directory, against which env.absPath resolves relative paths
// (source paths, restore targets, --repo, --config). A client that is
// interrupted shuts its writing half: the daemon cancels that command's
// context, the command reports "interrupted" and the exit code as usual,
// and the client prints it (a client that vanishes cancels the same way).
// Concurrent clients each get their own goroutine, streams and exit code;
// the repository serialises writers itself.

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
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"citadelfs/monitor"
	"citadelfs/snapshot"
)

// daemonState is the mount daemon's shared state that delegated commands use.
type daemonState struct {
	// repo is the repository the daemon holds open; openRepo returns it.
	repo *snapshot.Repository
	// monitor is the daemon's running monitor (status reads it), or nil.
	monitor *monitor.Monitor
	// integrity records the mount's reads that found corrupt data, for
	// the monitor's backup_corrupt alert.
	integrity *integrityRecord
	// refresh, when set, runs after every client command and before its
	// exit code goes back: the mount shows what the command changed (a
	// new snapshot in latest/) by the time the client returns.
	refresh func()
}

const (
	daemonProtoVersion = 1
	socketName         = "daemon.sock"

	frameRequest = 'r'
	frameStdout  = 'o'
	frameStderr  = 'e'
	frameExit    = 'x'

	maxFrame = 1 << 20
)

// daemonRequest is the client's one request.
type daemonRequest struct {
	Version int      `json:"v"`
	Args    []string `json:"args"` // command name first, as on the command line
	Cwd     string   `json:"cwd"`
	// StderrTerminal says whether the client's stderr is a terminal, so
	// progress is drawn there as if the command ran locally.
	StderrTerminal bool `json:"stderr_terminal"`
}

func socketPath(repo string) string { return filepath.Join(repo, socketName) }

// sockAddr returns an address for path that fits sun_path (108 bytes).
// A longer path is reached through an O_PATH descriptor of its directory
// as /proc/self/fd/N/daemon.sock; close releases that descriptor.
func sockAddr(path string) (addr string, close func(), err error) {
	if len(path) < 100 {
		return path, func() {}, nil
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, err
	}
	return "/proc/self/fd/" + strconv.Itoa(fd) + "/" + filepath.Base(path), func() { unix.Close(fd) }, nil
}

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	hdr := [5]byte{typ}
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(append(hdr[:], payload...)); err != nil {
		return err
	}
	return nil
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("daemon: frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// ---- client ----

// delegateToDaemon hands the command to a running mount daemon that owns the
// repository. handled is false when no daemon runs: no socket, or a stale
// one left by a killed daemon (connection refused). The client never
// removes a stale socket: a daemon starting at that moment may just have
// bound a new one at the same path. The daemon clears it at start, under
// the repository's lock.
func delegateToDaemon(ctx context.Context, env *cmdEnv, c *command, args []string) (code int, handled bool) {
	repo, err := env.repoPath()
	if err != nil || isRemote(repo) {
		return 0, false // the command itself reports the missing repository; no daemon serves an s3:// one
	}
	repo, err = filepath.Abs(repo)
	if err != nil {
		return 0, false
	}
	conn, err := dialDaemon(socketPath(repo))
	switch {
	case err == nil:
	case errors.Is(err, syscall.ECONNREFUSED):
		// Nobody listens: a daemon was killed. Run here; the command
		// takes the repository's lock, so it cannot race a new daemon.
		return 0, false
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		if _, serr := os.Lstat(socketPath(repo)); serr != nil {
			// No socket we can see (none, or the repository is not ours
			// to look into): no daemon to blame; the command says what
			// it cannot open.
			return 0, false
		}
		fmt.Fprintf(env.stderr, "citadelfs %s: the mount daemon owns %s and its control socket is root-only; run this as root\n", c.name, repo)
		return exitLocked, true
	default:
		return 0, false
	}
	defer conn.Close()
	// Nothing is sent, not even the arguments, before the server has
	// proven to be a daemon this caller may trust.
	if err := checkServer(conn, repo); err != nil {
		fmt.Fprintf(env.stderr, "citadelfs %s: %v\n", c.name, err)
		return exitFatal, true
	}
	cwd, _ := os.Getwd()
	req, _ := json.Marshal(daemonRequest{Version: daemonProtoVersion, Args: args, Cwd: cwd, StderrTerminal: env.isTerminal})
	if err := writeFrame(conn, frameRequest, req); err != nil {
		fmt.Fprintf(env.stderr, "citadelfs %s: mount daemon: %v\n", c.name, err)
		return exitFatal, true
	}
	return clientLoop(ctx, conn, env.stdout, env.stderr, c.name), true
}

func dialDaemon(path string) (*net.UnixConn, error) {
	addr, done, err := sockAddr(path)
	if err != nil {
		return nil, err
	}
	defer done()
	conn, err := net.DialTimeout("unix", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("daemon: %s is not a unix socket", path)
	}
	return uc, nil
}

// interruptGrace is how long an interrupted client waits for the daemon to
// report how the command ended: within the client's own stopGrace, after
// which it exits anyway (signals.go).
const interruptGrace = stopGrace - time.Second

// clientLoop copies the daemon's streams until the exit frame. On ctx's
// end it shuts its writing half, which cancels the command in the daemon,
// and keeps reading for the command's last words and exit code.
func clientLoop(ctx context.Context, conn *net.UnixConn, stdout, stderr io.Writer, name string) int {
	stop := context.AfterFunc(ctx, func() {
		conn.CloseWrite()
		conn.SetReadDeadline(time.Now().Add(interruptGrace))
	})
	defer stop()
	for {
		typ, p, err := readFrame(conn)
		if err != nil {
			if ctx.Err() != nil {
				return exitInterrupted
			}
			fmt.Fprintf(stderr, "citadelfs %s: the mount daemon closed the connection before the command finished (%v)\n", name, err)
			return exitFatal
		}
		switch typ {
		case frameStdout:
			stdout.Write(p)
		case frameStderr:
			stderr.Write(p)
		case frameExit:
			if len(p) != 4 {
				return exitFatal
			}
			return int(int32(binary.BigEndian.Uint32(p)))
		}
	}
}

// ---- server ----

// daemonServer serves the control socket.
type daemonServer struct {
	st   *daemonState
	path string
	ln   *net.UnixListener
	log  *slog.Logger

	ctx    context.Context // commands run under it; cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startDaemonServer listens on <repo>/daemon.sock. The caller holds the
// repository's lock, so a socket already there is stale and is replaced.
func startDaemonServer(repo string, st *daemonState, log *slog.Logger) (*daemonServer, error) {
	path := socketPath(repo)
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
	s := &daemonServer{st: st, path: path, ln: ln, log: log, ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *daemonServer) acceptLoop() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Error("daemon: accept", "err", err)
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

// close stops accepting, cancels the commands still running and waits up
// to grace for them to report their exit codes; then the socket is removed.
func (s *daemonServer) close(grace time.Duration) {
	s.ln.Close()
	os.Remove(s.path)
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.log.Warn("daemon: commands still running at shutdown", "waited", grace)
	}
}

// handle serves one client: read the request, run the command with the
// client's streams, send the exit code.
func (s *daemonServer) handle(conn *net.UnixConn) {
	if err := checkPeer(conn); err != nil {
		s.log.Warn("daemon: refused a client", "err", err)
		return
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := readFrame(conn)
	if err != nil || typ != frameRequest {
		s.log.Warn("daemon: bad request", "err", err, "type", typ)
		return
	}
	conn.SetReadDeadline(time.Time{})
	var req daemonRequest
	if err := json.Unmarshal(p, &req); err != nil {
		s.log.Warn("daemon: bad request", "err", err)
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
	if s.st.refresh != nil {
		s.st.refresh()
	}
	s.log.Info("daemon: ran a command for a client", "args", req.Args, "code", code, "took", time.Since(start).Round(time.Millisecond))
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
	out.frame(frameExit, b[:])
}

// run parses and runs the client's command as runMain would, inside the
// daemon. A panic in a command fails that command, not the daemon and its
// mount.
func (s *daemonServer) run(ctx context.Context, req daemonRequest, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("daemon: command panicked", "args", req.Args, "panic", r, "stack", string(debug.Stack()))
			fmt.Fprintf(stderr, "citadelfs: internal error in the mount daemon: %v\n", r)
			code = exitFatal
		}
	}()
	if req.Version != daemonProtoVersion {
		fmt.Fprintf(stderr, "citadelfs: the mount daemon speaks protocol %d, this client %d; use the same binary\n", daemonProtoVersion, req.Version)
		return exitFatal
	}
	if len(req.Args) == 0 {
		return exitUsage
	}
	c, ok := commands[req.Args[0]]
	if !ok || !c.delegable {
		fmt.Fprintf(stderr, "citadelfs: the mount daemon does not run %q\n", req.Args[0])
		return exitUsage
	}
	if !filepath.IsAbs(req.Cwd) {
		fmt.Fprintln(stderr, "citadelfs: the client sent no working directory")
		return exitUsage
	}
	env := &cmdEnv{stdout: stdout, stderr: stderr, global: &globalFlags{}, daemon: s.st, cwd: req.Cwd, isTerminal: req.StderrTerminal}
	if code, ok := parseFlags(c, env, req.Args[1:]); !ok {
		return code
	}
	// Paths the client named are relative to its directory, not ours.
	if env.global.repo != "" {
		env.global.repo = env.absPath(env.global.repo)
	}
	env.global.configPath = env.absPath(env.global.configPath)
	return reportError(stderr, c.name, c.run(ctx, env, env.flags.Args()))
}

// checkServer admits a daemon that runs as root or as the repository's
// owner, as SO_PEERCRED reports for whoever called listen(2). Anyone else
// who could bind <repo>/daemon.sock can write the repository: the client
// then neither talks to that server nor opens the repository itself
// (whoever planted the socket could have planted anything else there).
func checkServer(conn *net.UnixConn, repo string) error {
	cred, err := peerCred(conn)
	if err != nil {
		return fmt.Errorf("daemon: credentials of %s: %w", socketPath(repo), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(repo, &st); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if cred.Uid == 0 || cred.Uid == st.Uid {
		return nil
	}
	return fmt.Errorf("%s is served by uid %d (pid %d), not by root or the repository's owner (uid %d); refusing to talk to it or to open the repository (another user can write %s: check its permissions)",
		socketPath(repo), cred.Uid, cred.Pid, st.Uid, repo)
}

func peerCred(conn *net.UnixConn) (*unix.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
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

// frameWriter sends the command's output as frames; stdout and stderr share
// the connection, so writes are serialised. Once the client is gone,
// writes are dropped (the command notices its cancelled context).
type frameWriter struct {
	mu   sync.Mutex
	conn net.Conn
	dead bool
}

func (w *frameWriter) frame(typ byte, p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead {
		return
	}
	// A client that stopped reading must not stall the command forever.
	w.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	if err := writeFrame(w.conn, typ, p); err != nil {
		w.dead = true
	}
}

type frameStream struct {
	w   *frameWriter
	typ byte
}

func (w *frameWriter) stream(typ byte) io.Writer { return frameStream{w, typ} }

func (s frameStream) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		n := min(len(rest), maxFrame)
		s.w.frame(s.typ, rest[:n])
		rest = rest[n:]
	}
	return len(p), nil
}
