package daemon

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// ProtoVersion is the protocol version a Request carries; a Runner
	// refuses another.
	ProtoVersion = 1
	socketName   = "daemon.sock"

	frameRequest = 'r'
	frameStdout  = 'o'
	frameStderr  = 'e'
	frameExit    = 'x'

	maxFrame = 1 << 20
)

// Request is the client's one request.
type Request struct {
	Version int      `json:"v"`
	Args    []string `json:"args"` // command name first, as on the command line
	Cwd     string   `json:"cwd"`
	// StderrTerminal says whether the client's stderr is a terminal, so
	// progress is drawn there as if the command ran locally.
	StderrTerminal bool `json:"stderr_terminal"`
	// StderrColumns is that terminal's width (0: unknown), so the
	// progress line fits it.
	StderrColumns int `json:"stderr_columns,omitempty"`
}

// SocketPath is where the daemon of the repository at repo listens.
func SocketPath(repo string) string { return filepath.Join(repo, socketName) }

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
