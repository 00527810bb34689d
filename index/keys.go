package index

// Pebble key prefixes: the one namespace table of the index, which the
// repository's Pebble database shares with the monitor's history. One
// byte each; everything after is the key proper. Other packages do not
// build keys themselves: they use the functions below (docs/format.md
// lists the values, and namespaces says who owns each).
const (
	prefixBlob        = 'b' // b<blob id>      -> BlobRef (blobRefSize bytes)
	prefixPack        = 'p' // p<pack id>      -> blob count u32 | size u64
	prefixSnapshot    = 's' // s<snapshot id>  -> manifest bytes (a copy of the pack blob)
	prefixFile        = 'f' // f<source key>   -> file-change cache entry (owned by snapshot)
	prefixAttempt     = 'r' // r<label>        -> last snapshot attempt of a source (JSON, owned by snapshot)
	prefixCheck       = 'c' // c               -> last check run (JSON, owned by snapshot)
	prefixCorrupt     = 'x' // x               -> corrupt reads through the mount (JSON, owned by snapshot)
	prefixTestRestore = 't' // t               -> last test restore (JSON, owned by snapshot)
	prefixMaint       = 'o' // o<op>           -> last forget or prune run (JSON, owned by snapshot)
	// q<pack id><blob id> -> time u64 | reason: a damaged copy of a blob (quarantine.go)
	prefixQuarantine = 'q'
	// e -> the last background failure of Pebble (JSON, kvhealth.go)
	prefixProblem = 'e'
	// m/<time> -> one metric sample, a/<time>... -> one alert event: the
	// monitor's history (HistoryStore, historystore.go). The '/' after
	// the byte is part of the key since the first format (MetricsPrefix,
	// AlertsPrefix).
	prefixMetrics = 'm'
	prefixAlerts  = 'a'
)

// namespace is one entry of the key table: a prefix, the package that
// writes under it, and whether `repair index` carries its records over
// from the old index (carriedPrefix) rather than rebuilding them from the
// packs or dropping them.
type namespace struct {
	prefix  []byte
	owner   string
	carried bool
}

// namespaces is every prefix in use. No prefix is a prefix of another
// (TestNamespacesDisjoint): a scan or a DeleteRange of one namespace, such
// as the monitor's retention, never reaches another's records. A record
// whose key is the prefix alone (c, x, t, e) is the only key under it.
var namespaces = []namespace{
	{[]byte{prefixBlob}, "index", false},       // rebuilt from the pack trailers
	{[]byte{prefixPack}, "index", false},       // rebuilt from the pack trailers
	{[]byte{prefixSnapshot}, "index", false},   // rebuilt from the snapshot blobs
	{[]byte{prefixQuarantine}, "index", false}, // filtered by RebuildIndexWith: packs still on disk only
	{[]byte{prefixProblem}, "index", false},    // about the old index's tables, which go
	{[]byte{prefixFile}, "snapshot", true},
	{[]byte{prefixAttempt}, "snapshot", true},
	{[]byte{prefixCheck}, "snapshot", true},
	{[]byte{prefixCorrupt}, "snapshot", true},
	{[]byte{prefixTestRestore}, "snapshot", true},
	{[]byte{prefixMaint}, "snapshot", true},
	{MetricsPrefix(), "monitor", true},
	{AlertsPrefix(), "monitor", true},
}

// carriedPrefix reports whether records whose key starts with byte c are
// taken over from the old index by `repair index`: those namespaces says
// are carried, and any prefix this version does not know (a later
// version's records).
func carriedPrefix(c byte) bool {
	for _, ns := range namespaces {
		if ns.prefix[0] == c {
			return ns.carried
		}
	}
	return true
}

// MetricsPrefix bounds the monitor's metric samples ("m/").
func MetricsPrefix() []byte { return []byte{prefixMetrics, '/'} }

// AlertsPrefix bounds the monitor's alert events ("a/").
func AlertsPrefix() []byte { return []byte{prefixAlerts, '/'} }

// blobKey is the key of a blob's BlobRef.
func blobKey(id ID) []byte {
	k := make([]byte, 1+len(id))
	k[0] = prefixBlob
	copy(k[1:], id[:])
	return k
}

// SnapshotKey is the Pebble key of a snapshot record.
func SnapshotKey(id ID) []byte { return append([]byte{prefixSnapshot}, id[:]...) }

// fileCacheKey builds the file-change cache key for a source path.
func fileCacheKey(source string) []byte { return append([]byte{prefixFile}, source...) }

// fileCachePrefix bounds the whole file cache.
func fileCachePrefix() []byte { return []byte{prefixFile} }

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
