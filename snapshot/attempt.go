package snapshot

import (
	"encoding/json"
	"io"
	"time"

	"citadelfs/index"
)

// Attempt is the outcome of the last snapshot attempt of one source
// (index.Attempt, defined where it is persisted).
type Attempt = index.Attempt

func (r *Repository) recordAttempts(specs []SourceSpec, res *Result, start time.Time, err error) {
	b := r.idx.KV.NewBatch()
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
		v, _ := json.Marshal(a)
		b.Put(index.AttemptKey(s.Label), v)
	}
	b.Commit(true)
}

// Attempts returns the last attempt of every source that has one.
func (r *Repository) Attempts() ([]Attempt, error) {
	var out []Attempt
	p := index.AttemptPrefix()
	err := r.idx.KV.Scan(p, index.PrefixEnd(p), func(_, v []byte) error {
		var a Attempt
		if json.Unmarshal(v, &a) == nil {
			out = append(out, a)
		}
		return nil
	})
	if err == io.EOF {
		err = nil
	}
	return out, err
}

// ForgetAttempt removes label's attempt record (a label tried once by
// mistake, or a source taken out of the config), so the monitor stops
// reporting it; its snapshots stay. It reports whether there was one.
func (r *Repository) ForgetAttempt(label string) (bool, error) {
	ok, err := r.idx.KV.Has(index.AttemptKey(label))
	if err != nil || !ok {
		return false, err
	}
	return true, r.idx.KV.Delete(index.AttemptKey(label), true)
}
