package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Stopping on SIGINT and SIGTERM is one mechanism for every command:
//
//   - the first signal cancels the context every command runs under; the
//     snapshot, restore, check, prune, repair and forget loops, the
//     monitor and status loops, and the mount's serve loop stop on it, and
//     the command exits 130 having committed nothing partial (the mount,
//     the monitor loop and status --watch, which run until stopped, exit
//     0: stopping is how they end);
//   - if the work has not stopped within the command's grace (stopGrace,
//     or mountStopGrace for the mount) — a read blocked in a stalled file
//     system, a write stalled in Pebble — or a second signal comes, the
//     process says so in one line and exits 130 at once. That is safe at
//     any point: a snapshot, prune or repair killed anywhere leaves the
//     repository consistent (the crash-safety order in docs/format.md,
//     tested with kill -9), and the lock is an flock the kernel drops.
//     Hooks registered with onHardExit run first, bounded (the mount
//     detaches its mountpoint so it is not left dead).
const (
	// stopGrace bounds how long a command may take to stop after the
	// first signal: "a few seconds".
	stopGrace = 5 * time.Second
	// mountStopGrace is the mount's: the daemon's commands get
	// shutdownGrace, then unmounting may retry, detach and abort (about
	// 10 s), and systemd's stop timeout (90 s) is still well ahead.
	mountStopGrace = shutdownGrace + 20*time.Second
	// hardExitHookGrace bounds the hooks run before a hard exit.
	hardExitHookGrace = 2 * time.Second
)

// stopper owns the process's SIGINT/SIGTERM handling (see above).
type stopper struct {
	ctx    context.Context
	cancel context.CancelFunc
	sigs   chan os.Signal
	stderr io.Writer
	exit   func(int)

	mu    sync.Mutex
	name  string        // the command, for the hard-exit line
	grace time.Duration // its grace
	hooks []func()
}

// theStopper is main's; nil in unit tests, which pass their own context.
var theStopper *stopper

// newStopper starts catching SIGINT and SIGTERM.
func newStopper(stderr io.Writer, exit func(int)) *stopper {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	return stopperOn(sigs, stderr, exit)
}

// stopperOn is newStopper reading signals from sigs.
func stopperOn(sigs chan os.Signal, stderr io.Writer, exit func(int)) *stopper {
	s := &stopper{sigs: sigs, stderr: stderr, exit: exit, name: "citadelfs", grace: stopGrace}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s
}

func (s *stopper) loop() {
	first := <-s.sigs
	s.cancel()
	s.mu.Lock()
	grace := s.grace
	s.mu.Unlock()
	t := time.NewTimer(grace)
	select {
	case <-t.C:
		s.hardExit(fmt.Sprintf("did not stop within %s of %s", grace, sigName(first)))
	case again := <-s.sigs:
		s.hardExit(fmt.Sprintf("a second %s", sigName(again)))
	}
}

// hardExit runs the hooks (bounded) and exits 130 with one line.
func (s *stopper) hardExit(why string) {
	s.mu.Lock()
	name, hooks := s.name, s.hooks
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for i := len(hooks) - 1; i >= 0; i-- {
			hooks[i]()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(hardExitHookGrace):
	}
	fmt.Fprintf(s.stderr, "citadelfs %s: interrupted (%s); exiting now, nothing partial was committed\n", name, why)
	s.exit(exitInterrupted)
}

// setCommand names the running command and sets its grace.
func (s *stopper) setCommand(name string, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.name, s.grace = name, grace
}

// onHardExit registers fn to run before a hard exit; the returned func
// unregisters it (best effort: hooks are few and short-lived).
func onHardExit(fn func()) func() {
	s := theStopper
	if s == nil {
		return func() {}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, fn)
	n := len(s.hooks) - 1
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if n < len(s.hooks) {
			s.hooks[n] = func() {}
		}
	}
}

func sigName(sig os.Signal) string {
	if sig == os.Interrupt {
		return "SIGINT"
	}
	if sig == syscall.SIGTERM {
		return "SIGTERM"
	}
	return sig.String()
}

// commandGrace is the stop grace of command name.
func commandGrace(name string) time.Duration {
	if name == "mount" {
		return mountStopGrace
	}
	return stopGrace
}
