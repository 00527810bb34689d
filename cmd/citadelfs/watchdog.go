package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The mount service runs with WatchdogSec= (docs/systemd.md): systemd
// passes WATCHDOG_USEC (and WATCHDOG_PID) and restarts the daemon when no
// WATCHDOG=1 arrives within that time. The daemon pings at half the
// interval, and only after its own mount answered a statfs(2): a FUSE
// server that hangs (a deadlocked handler, a repository disk that stopped
// answering under a read) stops the pings, and systemd restarts it,
// instead of every reader of the mount hanging with it.

// watchdogInterval is how often to ping: half of $WATCHDOG_USEC, or 0 when
// the watchdog is off (not set, not a positive number, or $WATCHDOG_PID
// names another process, as sd_watchdog_enabled(3) reads them).
func watchdogInterval(getenv func(string) string, pid int) time.Duration {
	usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n != pid {
			return 0
		}
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// runWatchdog pings every interval while healthy returns nil, until ctx
// ends. healthy runs on this goroutine: when it hangs, the pings stop,
// which is the point.
func runWatchdog(ctx context.Context, every time.Duration, healthy func() error, notify func(string), log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		if err := healthy(); err != nil {
			if !failing {
				log.Warn("mount: not answering; watchdog pings stop until it does", "err", err)
			}
			failing = true
		} else {
			if failing {
				log.Info("mount: answering again; watchdog pings resume")
			}
			failing = false
			notify("WATCHDOG=1")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// mountAnswers asks the FUSE server at mp for statfs(2), which the kernel
// never answers from a cache.
func mountAnswers(mp string) func() error {
	return func() error {
		var st unix.Statfs_t
		return unix.Statfs(mp, &st)
	}
}

// startWatchdog starts the pings when systemd asked for them, and returns
// the function that stops them. Stopping does not wait for a statfs that
// hangs: the daemon's shutdown must go on.
func startWatchdog(mp string, log *slog.Logger) (stop func()) {
	every := watchdogInterval(os.Getenv, os.Getpid())
	if every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runWatchdog(ctx, every, mountAnswers(mp), sdNotify, log)
	}()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
}
