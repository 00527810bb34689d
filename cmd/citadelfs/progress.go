package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"citadelfs/monitor"
	"citadelfs/snapshot"
)

// counts is a pair of progress numbers (done and total, chunks and bytes)
// written by the work's goroutines and read by the progress line's own:
// atomics, since plain ints shared that way are a data race.
type counts struct{ a, b atomic.Int64 }

func (c *counts) set(a, b int64)    { c.a.Store(a); c.b.Store(b) }
func (c *counts) get() (a, b int64) { return c.a.Load(), c.b.Load() }
func (c *counts) setInts(a, b int)  { c.set(int64(a), int64(b)) }

// progressLine redraws one status line on a terminal about four times a
// second; on a pipe or with --quiet/--json it draws nothing, so logs and
// machine readers stay clean.
type progressLine struct {
	w    io.Writer
	stop chan struct{}
	wg   sync.WaitGroup
}

// defaultColumns is the width assumed where the terminal's is unknown.
const defaultColumns = 80

// columns is the width the progress line must fit: the terminal's now (it
// may have been resized), else what the command started with.
func (env *cmdEnv) progressColumns() int {
	if f, ok := env.stderr.(*os.File); ok && env.daemon == nil {
		if w := termColumns(f); w > 0 {
			return w
		}
	}
	if env.columns > 0 {
		return env.columns
	}
	return defaultColumns
}

// fitLine cuts s to fit a terminal width columns wide: at most columns-1
// characters, so the cursor never reaches the last column. A line that
// wraps cannot be cleared by \r\033[K, and each redraw then left one
// more line behind on a narrow terminal.
func fitLine(s string, columns int) string {
	if columns < 2 {
		return ""
	}
	if utf8.RuneCountInString(s) < columns {
		return s
	}
	r := []rune(s)
	return string(r[:columns-1])
}

func startProgress(env *cmdEnv, render func() string) *progressLine {
	p := &progressLine{w: env.stderr, stop: make(chan struct{})}
	if !env.isTerminal || env.global.quiet || env.global.json {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(p.w, "\r\033[K"+fitLine(render(), env.progressColumns()))
			}
		}
	}()
	return p
}

// warnf prints one warning line. Only where a progress line is drawn does
// it first clear that line: on a pipe or in a journal the escape sequence
// would be garbage in front of every warning.
func (env *cmdEnv) warnf(format string, args ...any) {
	if env.isTerminal && !env.global.quiet && !env.global.json {
		fmt.Fprint(env.stderr, "\r\033[K")
	}
	fmt.Fprintf(env.stderr, "warning: "+format+"\n", args...)
}

func (p *progressLine) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
}

// snapshotProgress renders bytes, files, rate and ETA.
func snapshotProgress(p *snapshot.Progress, verb string) func() string {
	return func() string {
		el := time.Since(p.Start).Seconds()
		done := p.Bytes.Load()
		rate := float64(done) / max(el, 0.001)
		s := fmt.Sprintf("%s %s, %d files, %s/s", verb, humanBytes(done), p.Files.Load(), humanBytes(int64(rate)))
		if total := p.TotalBytes.Load(); total > 0 {
			pct := 100 * float64(done) / float64(total)
			s = fmt.Sprintf("%s %s / %s (%.0f%%), %d/%d files, %s/s", verb, humanBytes(done), humanBytes(total), min(pct, 100),
				p.Files.Load(), p.TotalFiles.Load(), humanBytes(int64(rate)))
			if p.ScanDone.Load() && rate > 0 && total > done {
				s += ", ETA " + (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
			}
		}
		return s
	}
}

// humanBytes is the monitor's binary-unit format, for signed counters.
func humanBytes(n int64) string { return monitor.FormatBytes(uint64(max(n, 0))) }
