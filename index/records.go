package index

import "time"

// The records other packages keep under this package's keys, defined here
// once, where they are persisted (JSON under AttemptKey, CheckKey,
// CorruptReadsKey, TestRestoreKey and MaintenanceKey, read and written
// through their typed stores in recordstore.go): snapshot writes them (its
// Attempt, CheckRecord, CorruptReads, TestRestoreRecord and
// MaintenanceRecord are these types), the monitor takes them as its
// BackupState's input and derives its own views from them
// (monitor.SourceState and SourceStatus, CheckStatus, IntegrityStatus:
// last success, allowed ages, windows, the names metrics.json shows). The
// JSON field names are the on-disk format; change them only with a format
// version.

// Attempt is the outcome of the last snapshot attempt of one source,
// including failures (which leave no snapshot to look at).
type Attempt struct {
	Label    string        `json:"label"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	Result   string        `json:"result"` // AttemptOK, AttemptPartial, AttemptFailed
	Error    string        `json:"error,omitempty"`
	Snapshot string        `json:"snapshot,omitempty"`
}

// CheckRecord is the outcome of the last check run, kept in the index (one
// key) so that the monitor's backup_corrupt rule sees what a check found
// whether it ran in the mount daemon or on its own. Each run replaces it,
// except that found errors stay until a check that covers them passes
// (snapshot.checkReplaces).
type CheckRecord struct {
	Time     time.Time     `json:"time"`
	Duration time.Duration `json:"duration_ns"`
	// ReadData says chunks were read back; Subset is the fraction of the
	// packs read (0: all of them).
	ReadData bool    `json:"read_data"`
	Subset   float64 `json:"subset,omitempty"`
	Result   string  `json:"result"` // CheckOK, CheckErrors, CheckFailed, CheckUnknown
	// Errors is how many problems the check found.
	Errors int `json:"errors"`
	// FirstError is the first problem found (CheckErrors) or why the check
	// could not run (CheckFailed), on one line, at most 300 bytes.
	FirstError string `json:"first_error,omitempty"`
	// LastRun is when the latest check started, when that is not Time: a
	// later check that did not replace found errors (see
	// snapshot.checkReplaces) still ran, which is what check_stale asks.
	LastRun time.Time `json:"last_run,omitzero"`
}

// Ran is when the latest recorded check started.
func (c *CheckRecord) Ran() time.Time {
	if c.LastRun.After(c.Time) {
		return c.LastRun
	}
	return c.Time
}

// CorruptReads is what reads through the mount found corrupt (chunks that
// failed their hash check, answered with EIO), kept in the index so that a
// restarted daemon, and `monitor --once` or `status` run on their own,
// still raise backup_corrupt about them. Damage does not heal by itself:
// the record stays until a full `check --read-data` passes.
type CorruptReads struct {
	// Reads is how many reads found corrupt data.
	Reads uint64 `json:"reads"`
	// Files is how many distinct paths those reads were of, counted by the
	// daemon that saw them (a path read again after a restart counts
	// again); Capped says a daemon stopped counting at its bound.
	Files  int  `json:"files"`
	Capped bool `json:"capped,omitempty"`
	// LastTime, LastPath and LastError describe the latest corrupt read:
	// when, the path inside the mount, and the one-line error.
	LastTime  time.Time `json:"last_time"`
	LastPath  string    `json:"last_path"`
	LastError string    `json:"last_error"`
}

// TestRestoreRecord is the outcome of the last test restore, kept in the
// index (one key, replaced by each run that is not cancelled) for the
// monitor's test_restore rule and status. Result uses the check words:
// CheckOK, CheckErrors (damage found), CheckFailed (it could not run: no
// snapshots, the temp directory full).
type TestRestoreRecord struct {
	Time          time.Time     `json:"time"`
	Duration      time.Duration `json:"duration_ns"`
	Result        string        `json:"result"`
	Files         int           `json:"files"`
	Bytes         int64         `json:"bytes"`
	Snapshots     []string      `json:"snapshots,omitempty"`
	Errors        int           `json:"errors"`
	FirstError    string        `json:"first_error,omitempty"`
	SourceDiffers int           `json:"source_differs,omitempty"`
}

// MaintenanceRecord is the outcome of the last forget or prune run, kept in
// the index (one key per operation) so that the monitor's
// retention_failed rule sees a retention timer that keeps failing, whether
// the run was delegated to the mount daemon or ran on its own. Each run
// replaces its operation's record; a dry run records nothing.
type MaintenanceRecord struct {
	Op       string        `json:"op"` // snapshot.OpForget or snapshot.OpPrune
	Time     time.Time     `json:"time"`
	Duration time.Duration `json:"duration_ns"`
	Result   string        `json:"result"` // MaintenanceOK, MaintenanceFailed
	// Error is why it failed, on one line, at most snapshot.MaxCheckError
	// bytes.
	Error string `json:"error,omitempty"`
	// Removed is the snapshots forgotten (forget) or packs deleted or
	// rewritten (prune); BytesFreed what prune reclaimed.
	Removed    int   `json:"removed"`
	BytesFreed int64 `json:"bytes_freed,omitempty"`
}
