package snapshot

import (
	"context"
	"errors"
	"time"

	"citadelfs/index"
)

// Maintenance operations whose last run is recorded.
const (
	OpForget = "forget"
	OpPrune  = "prune"
)

// MaintenanceRecord is the outcome of the last forget or prune run
// (index.MaintenanceRecord, defined where it is persisted).
type MaintenanceRecord = index.MaintenanceRecord

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
	r.idx.MaintenanceStore().Save(op, m) // best effort: a broken index fails louder elsewhere
}

// MaintenanceRecords returns the last run of every operation that has one.
func (r *Repository) MaintenanceRecords() ([]MaintenanceRecord, error) {
	return r.idx.MaintenanceStore().All()
}
