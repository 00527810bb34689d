package index

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// HistoryStore is the monitor's history in a KV: metric samples and alert
// events, each an opaque value (the monitor's JSON) under a key whose
// layout index owns, with the prefixes of its one namespace table:
//
//	m/<8-byte big-endian unix nanoseconds>                  one sample
//	a/<8-byte big-endian unix nanoseconds><4-byte sequence><name>
//	                                                        one event
//
// The sequence orders the events of one time (the monitor's transitions of
// one cycle); name tells apart events of one time and sequence (the
// monitor's rule and subject). The big-endian time sorts keys by time, so
// a trim is one DeleteRange from the prefix to the cut-off: a range
// tombstone, whatever the amount of history, and nothing is rewritten.
//
// The KV is the repository's index inside the mount daemon, or the
// monitor's own Pebble directory outside it.
type HistoryStore struct{ kv *KV }

// History is kv's history store.
func (kv *KV) History() *HistoryStore { return &HistoryStore{kv: kv} }

// HistoryEvent is one event to record: its time, its order among the
// events of that time, a name unique among them, and the value.
type HistoryEvent struct {
	Time  time.Time
	Seq   int
	Name  []byte
	Value []byte
}

func historyTimeKey(prefix []byte, t time.Time) []byte {
	k := make([]byte, len(prefix)+8, len(prefix)+8+32)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], uint64(max(t.UnixNano(), 0)))
	return k
}

func historyKeyTime(prefix, key []byte) (time.Time, bool) {
	if len(key) < len(prefix)+8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(key[len(prefix):]))).UTC(), true
}

func historyEventKey(ev HistoryEvent) []byte {
	k := historyTimeKey(AlertsPrefix(), ev.Time)
	k = binary.BigEndian.AppendUint32(k, uint32(ev.Seq))
	return append(k, ev.Name...)
}

// Record stores one sample taken at t and its events in one batch, not
// synced: losing the last minute of history in a power cut is acceptable,
// an fsync per minute into the repository's index is not free.
func (h *HistoryStore) Record(t time.Time, sample []byte, events []HistoryEvent) error {
	b := h.kv.NewBatch()
	b.Put(historyTimeKey(MetricsPrefix(), t), sample)
	for _, ev := range events {
		b.Put(historyEventKey(ev), ev.Value)
	}
	return b.Commit(false)
}

// Trim drops the samples before samplesBefore and the events before
// eventsBefore.
func (h *HistoryStore) Trim(samplesBefore, eventsBefore time.Time) error {
	for _, x := range []struct {
		prefix []byte
		before time.Time
	}{{MetricsPrefix(), samplesBefore}, {AlertsPrefix(), eventsBefore}} {
		if err := h.kv.DeleteRange(x.prefix, historyTimeKey(x.prefix, x.before), false); err != nil {
			return fmt.Errorf("trim %s: %w", x.prefix, err)
		}
	}
	return nil
}

// Events calls fn with each event's value in [from, to), oldest first
// (newest first when reverse); fn may return io.EOF to stop early. The key
// is for error messages.
func (h *HistoryStore) Events(from, to time.Time, reverse bool, fn func(key, value []byte) error) error {
	scan := h.kv.Scan
	if reverse {
		scan = h.kv.ScanReverse
	}
	return scan(historyTimeKey(AlertsPrefix(), from), historyTimeKey(AlertsPrefix(), to), fn)
}

// Samples calls fn with each sample's value in [from, to), oldest first.
func (h *HistoryStore) Samples(from, to time.Time, fn func(key, value []byte) error) error {
	return h.kv.Scan(historyTimeKey(MetricsPrefix(), from), historyTimeKey(MetricsPrefix(), to), fn)
}

// LatestSample is the time of the newest stored sample.
func (h *HistoryStore) LatestSample() (time.Time, bool, error) {
	var at time.Time
	found := false
	p := MetricsPrefix()
	err := h.kv.ScanReverse(p, PrefixEnd(p), func(k, _ []byte) error {
		at, found = historyKeyTime(p, k)
		return io.EOF
	})
	if err != nil {
		return time.Time{}, false, err
	}
	return at, found, nil
}
