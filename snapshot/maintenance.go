package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"citadelfs/index"
)

// Maintenance operations whose last run is recorded.
const (
	OpForget = "forget"
	OpPrune  = "prune"
)

// MaintenanceRecord is the outcome of the last forget or prune run, kept in
// the index (one key per operation) so that the monitor's
// retention_failed rule sees a retention timer that keeps failing, whether
// the run was delegated to the mount daemon or ran on its own. Each run
// replaces its operation's record; a dry run records nothing.
type MaintenanceRecord struct {
	Op       string        `json:"op"` // OpForget or OpPrune
	Time     time.Time     `json:"time"`
	Duration time.Duration `json:"duration_ns"`
	Result   string        `json:"result"` // index.MaintenanceOK, index.MaintenanceFailed
	// Error is why it failed, on one line, at most MaxCheckError bytes.
	Error string `json:"error,omitempty"`
	// Removed is the snapshots forgotten (forget) or packs deleted or
	// rewritten (prune); BytesFreed what prune reclaimed.
	Removed    int   `json:"removed"`
	BytesFreed int64 `json:"bytes_freed,omitempty"`
}

// recordMaintenance stores the outcome of op. A run stopped by its context
// (Ctrl-C, SIGTERM) records nothing: it did not fail, it was stopped.
func (r *Repository) recordMaintenance(ctx context.Context, op string, start time.Time, removed int, freed int64, err error) {
	if err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)) {
		return
	}
	m := MaintenanceRecord{Op: op, Time: start, Duration: r.opts.Now().Sub(start), Result: index.MaintenanceOK, Removed: removed, BytesFreed: freed}
	if err != nil {
		m.Result, m.Error = index.MaintenanceFailed, OneLine(err.Error(), MaxCheckError)
	}
	v, _ := json.Marshal(m)
	r.idx.KV.Put(index.MaintenanceKey(op), v, true) // best effort: a broken index fails louder elsewhere
}

// MaintenanceRecords returns the last run of every operation that has one.
func (r *Repository) MaintenanceRecords() ([]MaintenanceRecord, error) {
	var out []MaintenanceRecord
	p := index.MaintenancePrefix()
	err := r.idx.KV.Scan(p, index.PrefixEnd(p), func(_, v []byte) error {
		var m MaintenanceRecord
		if json.Unmarshal(v, &m) == nil {
			out = append(out, m)
		}
		return nil
	})
	if err == io.EOF {
		err = nil
	}
	return out, err
}
