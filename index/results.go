package index

// The result words of the records kept under AttemptKey, CheckKey and
// MaintenanceKey. They
// are persisted (JSON in the index), written by snapshot and read by the
// monitor's rules (backup_failed, backup_corrupt) and by status, so they
// are defined here, once, where the records live: both sides use these
// constants, and renaming one renames it for both. Changing a word's
// value would misread records already stored.

// Results of a source's last snapshot attempt.
const (
	AttemptOK      = "ok"      // every file read and committed
	AttemptPartial = "partial" // committed, but some files were unreadable or changed (exit 3)
	AttemptFailed  = "failed"  // nothing committed
)

// Results of the last check run.
const (
	CheckOK     = "ok"     // no problems found
	CheckErrors = "errors" // corrupt or missing data found (exit 4)
	CheckFailed = "failed" // the check could not run to the end
	// CheckUnknown is no check's result: `repair index` writes it when the
	// old index, and with it earlier findings, could not be read, so that
	// nothing claims the repository sound until a full check says so
	// (backup_corrupt fires until then).
	CheckUnknown = "unknown"
)

// Results of the last forget or prune run (MaintenanceKey).
const (
	MaintenanceOK     = "ok"     // it ran to the end
	MaintenanceFailed = "failed" // it stopped on an error
)
