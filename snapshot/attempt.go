package snapshot

import (
	"time"

	"citadelfs/index"
)

// Attempt is the outcome of the last snapshot attempt of one source
// (index.Attempt, defined where it is persisted).
type Attempt = index.Attempt

func (r *Repository) recordAttempts(specs []SourceSpec, res *Result, start time.Time, err error) {
	atts := map[string]Attempt{}
	for _, s := range specs {
		a := Attempt{Label: s.Label, Start: start, Duration: r.opts.Now().Sub(start), Result: index.AttemptOK}
		switch {
		case err != nil:
			a.Result, a.Error = index.AttemptFailed, err.Error()
		default:
			a.Snapshot = res.Snapshot.ID.String()
			src, ok := res.Snapshot.Source(s.Label)
			if !ok {
				a.Result, a.Error = index.AttemptFailed, "source could not be read"
			} else if src.Stats.Unreadable > 0 || src.Stats.Changed > 0 {
				a.Result = index.AttemptPartial
			}
		}
		atts[s.Label] = a
	}
	r.idx.AttemptStore().SaveAll(atts)
}

// Attempts returns the last attempt of every source that has one.
func (r *Repository) Attempts() ([]Attempt, error) {
	return r.idx.AttemptStore().All()
}

// ForgetAttempt removes label's attempt record (a label tried once by
// mistake, or a source taken out of the config), so the monitor stops
// reporting it; its snapshots stay. It reports whether there was one.
func (r *Repository) ForgetAttempt(label string) (bool, error) {
	return r.idx.AttemptStore().Delete(label)
}
