package index

// Pebble key prefixes: the one namespace table of the index. One byte
// each; everything after is the key proper. Other packages do not build
// keys themselves: they use the functions below (docs/format.md lists the
// values).
const (
	prefixBlob        = 'b' // b<blob id>      -> BlobRef (blobRefSize bytes)
	prefixPack        = 'p' // p<pack id>      -> blob count u32 | size u64
	prefixSnapshot    = 's' // s<snapshot id>  -> manifest bytes (a copy of the pack blob)
	prefixFile        = 'f' // f<source key>   -> file-change cache entry (owned by snapshot)
	prefixAttempt     = 'r' // r<label>        -> last snapshot attempt of a source (JSON, owned by snapshot)
	prefixCheck       = 'c' // c               -> last check run (JSON, owned by snapshot)
	prefixCorrupt     = 'x' // x               -> corrupt reads through the mount (JSON, owned by snapshot)
	prefixTestRestore = 't' // t            -> last test restore (JSON, owned by snapshot)
	prefixMaint       = 'o' // o<op>           -> last forget or prune run (JSON, owned by snapshot)
	// q<pack id><blob id> -> time u64 | reason: a damaged copy of a blob (quarantine.go)
	prefixQuarantine = 'q'
	// e -> the last background failure of Pebble (JSON, kvhealth.go)
	prefixProblem = 'e'
	// 'm' and 'a' belong to the monitor's history (see monitor package).
)

// blobKey is the key of a blob's BlobRef.
func blobKey(id ID) []byte {
	k := make([]byte, 1+len(id))
	k[0] = prefixBlob
	copy(k[1:], id[:])
	return k
}

// SnapshotKey is the Pebble key of a snapshot record.
func SnapshotKey(id ID) []byte { return append([]byte{prefixSnapshot}, id[:]...) }

// FileCacheKey builds the file-change cache key for a source path.
func FileCacheKey(source string) []byte { return append([]byte{prefixFile}, source...) }

// FileCachePrefix bounds the whole file cache.
func FileCachePrefix() []byte { return []byte{prefixFile} }

// AttemptKey is where the last snapshot attempt of a source is recorded
// (for the monitor's backup_failed and freshness rules).
func AttemptKey(label string) []byte { return append([]byte{prefixAttempt}, label...) }

// AttemptPrefix bounds every attempt record.
func AttemptPrefix() []byte { return []byte{prefixAttempt} }

// CheckKey is where the outcome of the last check run is recorded (for the
// monitor's backup_corrupt rule). There is one: each run replaces it.
func CheckKey() []byte { return []byte{prefixCheck} }

// TestRestoreKey is where the outcome of the last test restore is recorded
// (for the monitor's test_restore rule). There is one: each run replaces it.
func TestRestoreKey() []byte { return []byte{prefixTestRestore} }

// MaintenanceKey is where the outcome of the last run of op ("forget",
// "prune") is recorded (for the monitor's retention_failed rule). Each run
// replaces it.
func MaintenanceKey(op string) []byte { return append([]byte{prefixMaint}, op...) }

// MaintenancePrefix bounds every maintenance record.
func MaintenancePrefix() []byte { return []byte{prefixMaint} }

// CorruptReadsKey is where reads through the mount that found corrupt data
// are recorded, so that a restarted daemon still alerts about them. There
// is one; a passing full check removes it.
func CorruptReadsKey() []byte { return []byte{prefixCorrupt} }

// ProblemKey is where the last background failure of the index is kept.
func ProblemKey() []byte { return []byte{prefixProblem} }
