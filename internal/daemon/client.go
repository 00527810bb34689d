package daemon

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Errors of Call. The caller maps them to its exit codes and words.
var (
	// ErrNoDaemon: nothing serves the repository (no socket, or a stale
	// one a killed daemon left: connection refused); run the command
	// locally. The client never removes a stale socket: a daemon starting
	// at that moment may just have bound a new one at the same path. The
	// daemon clears it at start, under the repository's lock.
	ErrNoDaemon = errors.New("daemon: no daemon serves the repository")
	// ErrRootOnly: a daemon serves the repository, and its socket is
	// root's (this caller is not root).
	ErrRootOnly = errors.New("daemon: the control socket is root-only")
	// ErrInterrupted: ctx ended, and the daemon did not report the
	// command's end within the grace.
	ErrInterrupted = errors.New("daemon: interrupted")
)

// ClosedError: the daemon closed the connection before the exit code.
type ClosedError struct{ Err error }

func (e *ClosedError) Error() string {
	return fmt.Sprintf("the mount daemon closed the connection before the command finished (%v)", e.Err)
}
func (e *ClosedError) Unwrap() error { return e.Err }

// UntrustedError: the server is not root nor the repository's owner, so
// nothing was sent to it.
type UntrustedError struct{ msg string }

func (e *UntrustedError) Error() string { return e.msg }

// Call hands req to the daemon serving the repository at repo (an
// absolute path) and copies its streams to stdout and stderr until the
// command's exit code, which it returns. Nothing is sent, not even the
// arguments, before the server has proven to run as root or as the
// repository's owner (an *UntrustedError otherwise). When ctx ends, Call
// shuts its writing half, which cancels the command in the daemon, and
// waits up to grace for the command's last words and exit code.
func Call(ctx context.Context, repo string, req Request, stdout, stderr io.Writer, grace time.Duration) (int, error) {
	conn, err := dial(SocketPath(repo))
	switch {
	case err == nil:
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		if _, serr := os.Lstat(SocketPath(repo)); serr != nil {
			// No socket we can see (none, or the repository is not ours
			// to look into): no daemon to blame; the command says what
			// it cannot open.
			return 0, ErrNoDaemon
		}
		return 0, ErrRootOnly
	default:
		// ECONNREFUSED (a daemon was killed; the command takes the
		// repository's lock, so it cannot race a new daemon), ENOENT...
		return 0, ErrNoDaemon
	}
	defer conn.Close()
	if err := checkServer(conn, repo); err != nil {
		return 0, err
	}
	req.Version = ProtoVersion
	p, _ := json.Marshal(req)
	if err := writeFrame(conn, frameRequest, p); err != nil {
		return 0, fmt.Errorf("mount daemon: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		conn.CloseWrite()
		conn.SetReadDeadline(time.Now().Add(grace))
	})
	defer stop()
	for {
		typ, p, err := readFrame(conn)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ErrInterrupted
			}
			return 0, &ClosedError{err}
		}
		switch typ {
		case frameStdout:
			stdout.Write(p)
		case frameStderr:
			stderr.Write(p)
		case frameExit:
			if len(p) != 4 {
				return 0, &ClosedError{fmt.Errorf("exit frame of %d bytes", len(p))}
			}
			return int(int32(binary.BigEndian.Uint32(p))), nil
		}
	}
}

func dial(path string) (*net.UnixConn, error) {
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

// checkServer admits a daemon that runs as root or as the repository's
// owner, as SO_PEERCRED reports for whoever called listen(2). Anyone else
// who could bind <repo>/daemon.sock can write the repository: the client
// then neither talks to that server nor opens the repository itself
// (whoever planted the socket could have planted anything else there).
func checkServer(conn *net.UnixConn, repo string) error {
	cred, err := peerCred(conn)
	if err != nil {
		return fmt.Errorf("daemon: credentials of %s: %w", SocketPath(repo), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(repo, &st); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if cred.Uid == 0 || cred.Uid == st.Uid {
		return nil
	}
	return &UntrustedError{fmt.Sprintf("%s is served by uid %d (pid %d), not by root or the repository's owner (uid %d); refusing to talk to it or to open the repository (another user can write %s: check its permissions)",
		SocketPath(repo), cred.Uid, cred.Pid, st.Uid, repo)}
}
