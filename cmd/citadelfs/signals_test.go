package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"citadelfs/internal/testutil"
)

// stopped runs a stopper on a channel of fake signals; exit records the
// code and the line printed instead of exiting.
func stopped(t *testing.T, grace time.Duration) (*stopper, chan os.Signal, chan int, *testutil.SyncBuffer) {
	sigs := make(chan os.Signal, 2)
	codes := make(chan int, 1)
	w := &testutil.SyncBuffer{}
	s := stopperOn(sigs, w, func(c int) { codes <- c })
	s.setCommand("snapshot", grace)
	return s, sigs, codes, w
}

// TestStopperHardExitAfterGrace: the first signal cancels the context; a
// command that does not stop is ended after its grace with one line and
// exit 130, after the hooks ran.
func TestStopperHardExitAfterGrace(t *testing.T) {
	s, sigs, codes, w := stopped(t, time.Millisecond)
	hooked := make(chan bool, 1)
	s.hooks = append(s.hooks, func() { hooked <- true })
	sigs <- syscall.SIGTERM
	<-s.ctx.Done()
	if c := <-codes; c != 130 {
		t.Fatalf("hard exit code %d, want 130", c)
	}
	if !<-hooked {
		t.Fatal("hook not run")
	}
	out := w.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "citadelfs snapshot: interrupted (did not stop within 1ms of SIGTERM)") {
		t.Fatalf("hard exit line %q", out)
	}
}

// TestStopperSecondSignal: a second signal ends the process at once,
// whatever the grace.
func TestStopperSecondSignal(t *testing.T) {
	s, sigs, codes, w := stopped(t, time.Hour)
	sigs <- syscall.SIGINT
	<-s.ctx.Done()
	select {
	case c := <-codes:
		t.Fatalf("exited (%d) after one signal with an hour of grace", c)
	default:
	}
	sigs <- syscall.SIGINT
	if c := <-codes; c != 130 || !strings.Contains(w.String(), "a second SIGINT") {
		t.Fatalf("second signal: exit %d, %q", c, w.String())
	}
}
