package main

// Logging: every command's log lines go through log/slog to stderr, as
// text (default) or JSON (--log-format json), at --log-level and above.
// Under systemd (JOURNAL_STREAM names the stream stderr is) the text lines
// carry sd-daemon(3) priority prefixes (<3> error, <4> warning, <6> info,
// <7> debug) and no time, which the journal records itself, so
// `journalctl -p warning` finds warnings. Program output (tables, --json,
// warnings for the user) is not logging and stays as it is.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
)

func defineLogFlags(fs interface {
	StringVar(p *string, name, value, usage string)
}, g *globalFlags) {
	fs.StringVar(&g.logLevel, "log-level", "info", "log lines at this level and above: debug, info, warn, error")
	fs.StringVar(&g.logFormat, "log-format", "text", "log lines as text or json")
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// checkLogFlags is called with the other flags, so a bad value is a usage
// error before anything runs.
func checkLogFlags(g *globalFlags) error {
	if _, err := parseLogLevel(g.logLevel); err != nil {
		return err
	}
	if g.logFormat != "text" && g.logFormat != "json" {
		return usagef("--log-format %q: want text or json", g.logFormat)
	}
	return nil
}

// logger is the command's logger: env.stderr, the global flags' level and
// format, journald prefixes where stderr is the journal.
func (env *cmdEnv) logger() *slog.Logger {
	level, _ := parseLogLevel(env.global.logLevel) // checked by parseFlags
	opts := &slog.HandlerOptions{Level: level}
	if env.global.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(env.stderr, opts))
	}
	if f, ok := env.stderr.(*os.File); ok && env.daemon == nil && isJournalStream(f, os.Getenv("JOURNAL_STREAM")) {
		return slog.New(newJournalHandler(env.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(env.stderr, opts))
}

// isJournalStream says whether f is the stream JOURNAL_STREAM ("DEV:INODE",
// set by systemd for a unit whose stderr is the journal) names; a child
// that inherited the variable but writes elsewhere is not.
func isJournalStream(f *os.File, js string) bool {
	if js == "" {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return js == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// journalHandler writes text lines prefixed with their syslog priority,
// without a time.
type journalHandler struct {
	mu   *sync.Mutex
	w    io.Writer
	opts slog.HandlerOptions
	// attrs and groups are applied to the inner text handler per record.
	inner func(w io.Writer) slog.Handler
}

func newJournalHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	o := *opts
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return &journalHandler{mu: &sync.Mutex{}, w: w, opts: o, inner: func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, &o) }}
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.opts.Level.Level()
}

// priority is sd-daemon(3)'s prefix for l.
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	if err := h.inner(&b).Handle(ctx, r); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, priority(r.Level)+b.String())
	return err
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	prev := h.inner
	return &journalHandler{mu: h.mu, w: h.w, opts: h.opts, inner: func(w io.Writer) slog.Handler { return prev(w).WithAttrs(attrs) }}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	prev := h.inner
	return &journalHandler{mu: h.mu, w: h.w, opts: h.opts, inner: func(w io.Writer) slog.Handler { return prev(w).WithGroup(name) }}
}
