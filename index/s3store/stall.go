package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"citadelfs/index"
)

// # A store that stops answering
//
// Every call on the store (a PUT, a ranged GET, a HEAD, a listing, a
// DELETE) runs under a watch: its context is cancelled once the call has
// gone Config.Timeout without progress, and the call fails with
// index.ErrStoreUnavailable. Progress is an answer, a listed key, or a
// byte of a body moved that the call had not moved before (a retry that
// sends a body again is not progress). So a PUT of a pack over a slow
// link lives as long as its bytes flow, and a store that accepts
// connections but never answers fails the call after one Timeout. What
// a watch cannot see is the bytes in the sockets' buffers: once a PUT's
// body is handed over, its last few MiB must reach the store within one
// Timeout (60 s: links down to a few Mbit/s).
//
// Without it each attempt waited Timeout for its answer and minio-go
// tried again, Retries times: `citadelfs snapshots` against an endpoint
// that accepted and never answered took more than 5 minutes to fail, and
// a command makes several calls in a row. Transport.ResponseHeaderTimeout
// alone cannot say it either: it does not cover a body that stops half
// way, which waited for ever.

// errStalled is the cause a watch cancels its call with.
var errStalled = errors.New("no progress")

// watch is one call's watchdog (see above).
type watch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	d      time.Duration
	timer  *time.Timer
}

// watch starts the watchdog of one call; done must be called when the
// call returns.
func (s *Store) watch() *watch {
	ctx, cancel := context.WithCancelCause(context.Background())
	w := &watch{ctx: ctx, cancel: cancel, d: s.timeout}
	w.timer = time.AfterFunc(w.d, func() { cancel(errStalled) })
	return w
}

// progress restarts the watch's clock.
func (w *watch) progress() { w.timer.Reset(w.d) }

func (w *watch) done() {
	w.timer.Stop()
	w.cancel(nil)
}

// stalled reports whether the watch cancelled the call.
func (w *watch) stalled() bool { return errors.Is(context.Cause(w.ctx), errStalled) }

// wrap is Store.wrap, or the stall's own error when the watch ended the
// call.
func (w *watch) wrap(s *Store, what string, err error) error {
	if w.stalled() {
		return fmt.Errorf("s3store: %s: no answer from the store for %s: %w", what, w.d, index.ErrStoreUnavailable)
	}
	return s.wrap(what, err)
}

// sentBody is a request body that reports new bytes read to its watch.
// It seeks: minio-go rewinds a body for a retry, and retries only a body
// that does.
type sentBody struct {
	r    io.ReadSeeker
	w    *watch
	mu   sync.Mutex
	off  int64 // where the next Read starts
	high int64 // the furthest any Read got: beyond it is progress
}

func (b *sentBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.mu.Lock()
	b.off += int64(n)
	if b.off > b.high {
		b.high = b.off
		b.w.progress()
	}
	b.mu.Unlock()
	return n, err
}

func (b *sentBody) Seek(off int64, whence int) (int64, error) {
	pos, err := b.r.Seek(off, whence)
	if err == nil {
		b.mu.Lock()
		b.off = pos
		b.mu.Unlock()
	}
	return pos, err
}

// answerBody is a response body that reports every byte read to its watch.
type answerBody struct {
	r io.Reader
	w *watch
}

func (a answerBody) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.w.progress()
	}
	return n, err
}
