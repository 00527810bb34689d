package main

// The mount daemon's side of the control socket (internal/daemon is the
// socket, its framing and trust checks): which commands a client may hand
// to the daemon, how they run there (in-process, with env.daemon set so
// openRepo returns the open repository, and env.cwd the client's working
// directory, against which env.absPath resolves relative paths: source
// paths, restore targets, --repo, --config), and the exit codes and words
// of a client whose daemon cannot be used.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"citadelfs/internal/daemon"
	"citadelfs/internal/fsadapter"
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
	integrity *fsadapter.CorruptReadRecord
	// refresh, when set, runs after every client command and before its
	// exit code goes back: the mount shows what the command changed (a
	// new snapshot in latest/) by the time the client returns.
	refresh func()
	// sync, for a repository in a store, brings its cache up to date
	// before each client command; nil for a local one.
	sync *cacheSync
}

// delegateToDaemon hands the command to a running mount daemon that owns
// the repository. handled is false when no daemon runs (daemon.ErrNoDaemon).
func delegateToDaemon(ctx context.Context, env *cmdEnv, c *command, args []string) (code int, handled bool) {
	repo, err := env.repoPath()
	if err != nil {
		return 0, false // the command itself reports the missing repository
	}
	sockDir, ok := env.daemonDir(repo)
	if !ok {
		return 0, false
	}
	if !isRemote(repo) {
		repo = sockDir
	}
	cwd, _ := os.Getwd()
	req := daemon.Request{Args: args, Cwd: cwd, StderrTerminal: env.isTerminal, StderrColumns: env.columns}
	code, err = daemon.Call(ctx, sockDir, req, env.stdout, env.stderr, interruptGrace)
	switch {
	case err == nil:
		return code, true
	case errors.Is(err, daemon.ErrNoDaemon):
		return 0, false
	case errors.Is(err, daemon.ErrRootOnly):
		fmt.Fprintf(env.stderr, "citadelfs %s: the mount daemon owns %s and its control socket is root-only; run this as root\n", c.name, repo)
		return exitLocked, true
	case errors.Is(err, daemon.ErrInterrupted):
		return exitInterrupted, true
	}
	fmt.Fprintf(env.stderr, "citadelfs %s: %v\n", c.name, err)
	return exitFatal, true
}

// interruptGrace is how long an interrupted client waits for the daemon to
// report how the command ended: within the client's own stopGrace, after
// which it exits anyway (signals.go).
const interruptGrace = stopGrace - time.Second

// startDaemonServer serves the control socket of repo for the mount:
// each client's command runs with st. The caller holds the repository's
// lock.
func startDaemonServer(repo string, st *daemonState, log *slog.Logger) (*daemon.Server, error) {
	run := func(ctx context.Context, req daemon.Request, stdout, stderr io.Writer) int {
		return runForClient(ctx, st, log, req, stdout, stderr)
	}
	return daemon.Listen(repo, run, daemon.Options{Log: log, After: func() {
		if st.refresh != nil {
			st.refresh()
		}
	}})
}

// runForClient parses and runs the client's command as runMain would,
// inside the daemon (the daemon.Runner of the mount). A panic in a command
// fails that command, not the daemon and its mount.
func runForClient(ctx context.Context, st *daemonState, log *slog.Logger, req daemon.Request, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("daemon: command panicked", "args", req.Args, "panic", r, "stack", string(debug.Stack()))
			fmt.Fprintf(stderr, "citadelfs: internal error in the mount daemon: %v\n", r)
			code = exitFatal
		}
	}()
	if req.Version != daemon.ProtoVersion {
		fmt.Fprintf(stderr, "citadelfs: the mount daemon speaks protocol %d, this client %d; use the same binary\n", daemon.ProtoVersion, req.Version)
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
	if st.sync != nil {
		maxAge := time.Duration(0)
		if c.staleOK {
			maxAge = clientSyncAge
		}
		st.sync.sync(maxAge)
	}
	env := &cmdEnv{stdout: stdout, stderr: stderr, global: &globalFlags{}, daemon: st, cwd: req.Cwd, isTerminal: req.StderrTerminal, columns: req.StderrColumns}
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
