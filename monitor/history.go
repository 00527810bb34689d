package monitor

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"citadelfs/index"
)

// History layout in the KV (shared with the repository's index, so the
// prefixes are index's, in its one namespace table):
//
//	m/<8-byte big-endian unix nanoseconds>                  one Sample, JSON
//	a/<8-byte big-endian unix nanoseconds><4-byte sequence><rule>\x00<subject>
//	                                                        one Event, JSON
//
// The sequence orders the transitions of one cycle, which share a time
// (inactive->pending->firing when `for` is 0).
//
// The big-endian time sorts keys by time, so retention is one DeleteRange
// from the prefix's start to the cut-off time: a range tombstone, whatever
// the amount of history, and nothing is ever rewritten.
var (
	prefixMetrics = index.MetricsPrefix()
	prefixAlerts  = index.AlertsPrefix()
)

type history struct {
	kv *index.KV
	// readOnly keeps the history as it is: no samples, events or trims
	// (`citadelfs status` reads another process's history).
	readOnly bool
}

// OpenHistoryKV opens (creating if needed) the monitor's own Pebble
// directory, for when no repository index is shared with the monitor.
// readOnly opens an existing one without writing.
func OpenHistoryKV(dir string, readOnly bool) (*index.KV, error) {
	if !readOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("monitor: history: %w", err)
		}
	} else if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("monitor: history: %w", err)
	}
	kv, err := index.OpenKV(dir, index.KVOptions{CacheBytes: 4 << 20, ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("monitor: history: %w", err)
	}
	return kv, nil
}

func timeKey(prefix []byte, t time.Time) []byte {
	k := make([]byte, len(prefix)+8, len(prefix)+8+32)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], uint64(max(t.UnixNano(), 0)))
	return k
}

func keyTime(prefix, key []byte) (time.Time, bool) {
	if len(key) < len(prefix)+8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(key[len(prefix):]))).UTC(), true
}

func eventKey(ev Event, seq int) []byte {
	k := timeKey(prefixAlerts, ev.Time)
	k = binary.BigEndian.AppendUint32(k, uint32(seq))
	k = append(k, ev.Rule...)
	k = append(k, 0)
	return append(k, ev.Subject...)
}

// record stores one sample and its events in one batch. Not synced: losing
// the last minute of history in a power cut is acceptable, an fsync per
// minute into the repository's index is not free.
func (h *history) record(s *Sample, events []Event) error {
	if h == nil || h.readOnly {
		return nil
	}
	b := h.kv.NewBatch()
	v, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("monitor: history: encode sample: %w", err)
	}
	b.Put(timeKey(prefixMetrics, s.Time), v)
	for i, ev := range events {
		v, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("monitor: history: encode event: %w", err)
		}
		b.Put(eventKey(ev, i), v)
	}
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("monitor: history: %w", err)
	}
	return nil
}

// trim drops samples older than now-metrics and events older than
// now-alerts.
func (h *history) trim(now time.Time, metrics, alerts time.Duration) error {
	if h == nil || h.readOnly {
		return nil
	}
	for _, x := range []struct {
		prefix []byte
		keep   time.Duration
	}{{prefixMetrics, metrics}, {prefixAlerts, alerts}} {
		if err := h.kv.DeleteRange(x.prefix, timeKey(x.prefix, now.Add(-x.keep)), false); err != nil {
			return fmt.Errorf("monitor: history: trim %s: %w", x.prefix, err)
		}
	}
	return nil
}

// events calls fn for each event in [from, to), oldest first (newest first
// when reverse). fn may return io.EOF to stop.
func (h *history) events(from, to time.Time, reverse bool, fn func(Event) error) error {
	scan := h.kv.Scan
	if reverse {
		scan = h.kv.ScanReverse
	}
	return scan(timeKey(prefixAlerts, from), timeKey(prefixAlerts, to), func(k, v []byte) error {
		var ev Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return fmt.Errorf("monitor: history: event %x: %w", k, err)
		}
		return fn(ev)
	})
}

// samples calls fn for each sample in [from, to), oldest first.
func (h *history) samples(from, to time.Time, fn func(*Sample) error) error {
	return h.kv.Scan(timeKey(prefixMetrics, from), timeKey(prefixMetrics, to), func(k, v []byte) error {
		s := &Sample{}
		if err := json.Unmarshal(v, s); err != nil {
			return fmt.Errorf("monitor: history: sample %x: %w", k, err)
		}
		return fn(s)
	})
}

// latestSample returns the time of the newest stored sample.
func (h *history) latestSample() (time.Time, bool, error) {
	var at time.Time
	found := false
	err := h.kv.ScanReverse(prefixMetrics, index.PrefixEnd(prefixMetrics), func(k, _ []byte) error {
		at, found = keyTime(prefixMetrics, k)
		return io.EOF
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("monitor: history: %w", err)
	}
	return at, found, nil
}

// recentEvents returns up to n events since from, newest first.
func (h *history) recentEvents(from, to time.Time, n int) ([]Event, error) {
	var out []Event
	err := h.events(from, to, true, func(ev Event) error {
		out = append(out, ev)
		if len(out) >= n {
			return io.EOF
		}
		return nil
	})
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return out, nil
}
