package snapshot

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"citadelfs/index"
)

// CheckRecord is the outcome of the last check run (index.CheckRecord,
// defined where it is persisted).
type CheckRecord = index.CheckRecord

// MaxCheckError bounds CheckRecord.FirstError.
const MaxCheckError = 300

// recordCheck stores the outcome of a check. A check stopped by its
// context (Ctrl-C, a client that went away) records nothing: it found
// nothing worth replacing the previous record with.
func (r *Repository) recordCheck(ctx context.Context, o CheckOptions, rep *CheckReport, start time.Time, err error) {
	if err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)) {
		return
	}
	c := CheckRecord{Time: start, Duration: r.opts.Now().Sub(start), ReadData: o.ReadData, Result: index.CheckOK}
	if o.ReadData && o.sampled() {
		c.Subset = o.Subset
	}
	switch {
	case err != nil:
		c.Result, c.FirstError = index.CheckFailed, OneLine(err.Error(), MaxCheckError)
	case !rep.OK():
		c.Result, c.Errors, c.FirstError = index.CheckErrors, len(rep.Problems), OneLine(rep.Problems[0], MaxCheckError)
	}
	if c.Result == index.CheckOK && o.ReadsAll() {
		r.clearCorruptReads()
	}
	if prev, _ := r.LastCheck(); prev != nil && !checkReplaces(&c, prev) {
		// The finding stands; the run is still noted.
		prev.LastRun = start
		c = *prev
	}
	r.idx.CheckStore().Save(c)
}

// checkReplaces reports whether c is the finding to keep over prev. Found
// errors stand until a check that read at least as much passes: a check
// that could not run proves nothing, and next week's random 10% would
// most likely not read the damaged pack at all. So only a full read-back
// (or, for errors a check without --read-data found, another such check)
// clears them.
func checkReplaces(c, prev *CheckRecord) bool {
	if prev.Result != index.CheckErrors && prev.Result != index.CheckUnknown || c.Result == index.CheckErrors {
		return true
	}
	if c.Result != index.CheckOK {
		return false
	}
	full := c.ReadData && c.Subset == 0
	return full || (prev.Result == index.CheckErrors && !c.ReadData && !prev.ReadData)
}

// LastCheck returns the record of the last check run, nil if none ran
// (or the record cannot be read).
func (r *Repository) LastCheck() (*CheckRecord, error) {
	return r.idx.CheckStore().Load()
}

// OneLine folds s onto one line and cuts it to at most n bytes, on a rune
// boundary, marking the cut with "…": how an error is kept in a record or
// an alert message.
func OneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
