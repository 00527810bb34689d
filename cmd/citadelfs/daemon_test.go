package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/internal/daemon"
)

// Test commands that the daemon runs for a client. They stand in for
// snapshot/restore: what matters here is streams, paths, codes and
// cancellation, not the repository.
var (
	dtestStarted = make(chan struct{}, 10)
	dtestEnvs    = make(chan *cmdEnv, 10)
)

func init() {
	register(&command{
		name: "dtest-echo", delegable: true,
		flags: func(fs *pflag.FlagSet) { fs.Int("code", 0, "exit code") },
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			dtestEnvs <- env
			for _, a := range args {
				fmt.Fprintln(env.stdout, "out:"+env.absPath(a))
			}
			fmt.Fprint(env.stderr, "progress\r")
			fmt.Fprintln(env.stderr, "warning: one file vanished")
			if code, _ := env.flags.GetInt("code"); code != 0 {
				return withExit(code, errSilent)
			}
			return nil
		},
	})
	register(&command{
		name: "dtest-block", delegable: true,
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fmt.Fprintln(env.stdout, "started")
			dtestStarted <- struct{}{}
			<-ctx.Done()
			fmt.Fprintln(env.stderr, "stopping: nothing committed")
			return errInterrupted
		},
	})
	register(&command{
		name: "dtest-panic", delegable: true,
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			var m map[string]int
			m["boom"]++
			return nil
		},
	})
	register(&command{
		name: "dtest-big", delegable: true,
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			env.stdout.Write(bytes.Repeat([]byte("x"), 3<<20+17))
			return nil
		},
	})
}

func startTestDaemon(t *testing.T, repo string) *daemon.Server {
	t.Helper()
	if err := os.MkdirAll(repo, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := startDaemonServer(repo, &daemonState{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(5 * time.Second) })
	return s
}

// client runs args as the CLI would, with the daemon's socket in repo.
func client(ctx context.Context, repo string, args ...string) (code int, handled bool, stdout, stderr string) {
	var o, e bytes.Buffer
	env := &cmdEnv{stdout: &o, stderr: &e, global: &globalFlags{repo: repo}}
	c := commands[args[0]]
	code, handled = delegateToDaemon(ctx, env, c, args)
	return code, handled, o.String(), e.String()
}

func TestDaemonRunsCommandForClient(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	startTestDaemon(t, repo)
	fi, err := os.Stat(daemon.SocketPath(repo))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket: %v %v", fi.Mode(), err)
	}
	cwd, _ := os.Getwd()
	code, handled, out, errOut := client(context.Background(), repo, "dtest-echo", "--code", "3", "rel/dir", "/abs")
	if !handled || code != 3 {
		t.Fatalf("code %d handled %v", code, handled)
	}
	if want := "out:" + filepath.Join(cwd, "rel/dir") + "\nout:/abs\n"; out != want {
		t.Errorf("stdout %q, want %q (relative paths resolve against the client's cwd)", out, want)
	}
	if errOut != "progress\rwarning: one file vanished\n" {
		t.Errorf("stderr %q", errOut)
	}
	env := <-dtestEnvs
	if env.daemon == nil || env.cwd != cwd {
		t.Errorf("daemon env: daemon %v cwd %q", env.daemon, env.cwd)
	}
}

func TestDaemonUsageErrorsAndHelp(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	startTestDaemon(t, repo)
	if code, _, _, e := client(context.Background(), repo, "dtest-echo", "--nope"); code != exitUsage || !strings.Contains(e, "unknown flag") {
		t.Errorf("bad flag: %d %q", code, e)
	}
	if code, _, o, _ := client(context.Background(), repo, "dtest-echo", "--help"); code != 0 || !strings.Contains(o, "Usage: citadelfs dtest-echo") {
		t.Errorf("help: %d %q", code, o)
	}
}

func TestDaemonClientInterruptCancelsCommand(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	startTestDaemon(t, repo)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-dtestStarted; cancel() }()
	start := time.Now()
	code, handled, out, errOut := client(ctx, repo, "dtest-block")
	if !handled || code != exitInterrupted {
		t.Errorf("code %d handled %v", code, handled)
	}
	if out != "started\n" || !strings.Contains(errOut, "stopping: nothing committed") {
		t.Errorf("the command's last words did not reach the client: %q %q", out, errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("interrupt took %v", d)
	}
}

func TestDaemonConcurrentClients(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	startTestDaemon(t, repo)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, out, _ := client(context.Background(), repo, "dtest-echo", "--code", strconv.Itoa(i+20), "/c"+strconv.Itoa(i))
			if code != i+20 || out != "out:/c"+strconv.Itoa(i)+"\n" {
				t.Errorf("client %d: code %d out %q", i, code, out)
			}
		}()
	}
	wg.Wait()
	for range 8 {
		<-dtestEnvs
	}
}

func TestDaemonSurvivesPanickingCommand(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	startTestDaemon(t, repo)
	code, _, _, e := client(context.Background(), repo, "dtest-panic")
	if code != exitFatal || !strings.Contains(e, "internal error") {
		t.Errorf("panic: code %d %q", code, e)
	}
	if code, _, _, _ := client(context.Background(), repo, "dtest-echo"); code != 0 {
		t.Errorf("daemon dead after a panic: %d", code)
	}
	<-dtestEnvs
}

func TestDaemonLargeOutput(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	startTestDaemon(t, repo)
	code, _, out, _ := client(context.Background(), repo, "dtest-big")
	if code != 0 || len(out) != 3<<20+17 {
		t.Errorf("code %d, %d bytes", code, len(out))
	}
}

func TestDaemonNoSocketOrStaleSocket(t *testing.T) {
	repo := t.TempDir()
	if _, handled, _, _ := client(context.Background(), repo, "dtest-echo"); handled {
		t.Error("handled without a daemon")
	}
	// A daemon killed with -9 leaves its socket behind: connecting is
	// refused and the command runs locally. The client leaves the socket
	// alone: a daemon starting at that moment may have just bound it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: daemon.SocketPath(repo), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, handled, _, _ := client(context.Background(), repo, "dtest-echo"); handled {
		t.Error("handled by a dead daemon")
	}
	if _, err := os.Lstat(daemon.SocketPath(repo)); err != nil {
		t.Errorf("the client removed the socket: %v", err)
	}
	// A new daemon replaces the stale socket.
	startTestDaemon(t, repo)
	if code, handled, _, _ := client(context.Background(), repo, "dtest-echo"); !handled || code != 0 {
		t.Errorf("after replacing a stale socket: %d %v", code, handled)
	}
	<-dtestEnvs
}

// sun_path holds 108 bytes; repositories can live deeper than that.
func TestDaemonLongRepoPath(t *testing.T) {
	repo := filepath.Join(t.TempDir(), strings.Repeat("deep-directory-name/", 6), "repo")
	if len(daemon.SocketPath(repo)) < 110 {
		t.Fatalf("path %d bytes is not long enough for the test", len(daemon.SocketPath(repo)))
	}
	startTestDaemon(t, repo)
	if code, handled, _, _ := client(context.Background(), repo, "dtest-echo"); !handled || code != 0 {
		t.Errorf("long path: %d %v", code, handled)
	}
	<-dtestEnvs
}

func TestDaemonShutdownCancelsRunningCommands(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	s := startTestDaemon(t, repo)
	res := make(chan int, 1)
	go func() {
		code, _, _, _ := client(context.Background(), repo, "dtest-block")
		res <- code
	}()
	<-dtestStarted
	s.Close(5 * time.Second)
	if code := <-res; code != exitInterrupted {
		t.Errorf("client of a daemon shutting down got %d", code)
	}
	if _, err := os.Lstat(daemon.SocketPath(repo)); !errors.Is(err, os.ErrNotExist) {
		t.Error("socket left after close")
	}
}
