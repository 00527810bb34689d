package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestWatchdogInterval(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, c := range []struct {
		kv   map[string]string
		want time.Duration
	}{
		{map[string]string{}, 0},
		{map[string]string{"WATCHDOG_USEC": "60000000"}, 30 * time.Second},
		{map[string]string{"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "42"}, 30 * time.Second},
		{map[string]string{"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "43"}, 0}, // another process's
		{map[string]string{"WATCHDOG_USEC": "0"}, 0},
		{map[string]string{"WATCHDOG_USEC": "soon"}, 0},
	} {
		if got := watchdogInterval(env(c.kv), 42); got != c.want {
			t.Errorf("%v: %v, want %v", c.kv, got, c.want)
		}
	}
}

// Pings go out only after a health probe passed: a mount that stops
// answering stops them, and they resume when it answers again.
func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	results := []error{nil, errors.New("hung"), errors.New("hung"), nil, nil}
	var events []string
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	healthy := func() error {
		if len(results) == 0 {
			cancel()
			return errors.New("end of the test")
		}
		r := results[0]
		results = results[1:]
		if r != nil {
			events = append(events, "fail")
		} else {
			events = append(events, "ok")
		}
		return r
	}
	// runWatchdog calls healthy and notify on its own goroutine only.
	runWatchdog(ctx, time.Millisecond, healthy, func(s string) { events = append(events, s) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	want := "ok WATCHDOG=1 fail fail ok WATCHDOG=1 ok WATCHDOG=1"
	if got := strings.Join(events, " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
}
