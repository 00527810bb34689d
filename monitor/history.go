package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"citadelfs/index"
)

// The history's keys are index's (index.HistoryStore: samples and alert
// events by time, in its one namespace table); the values are this
// package's Sample and Event as JSON. The KV is the repository's index
// inside the mount daemon, or the monitor's own (OpenHistoryKV).

type history struct {
	store *index.HistoryStore
	// readOnly keeps the history as it is: no samples, events or trims
	// (`citadelfs status` reads another process's history).
	readOnly bool
}

func newHistory(kv *index.KV, readOnly bool) *history {
	return &history{store: kv.History(), readOnly: readOnly}
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

// record stores one sample and its events in one batch (not synced; see
// index.HistoryStore.Record). An event's name is its rule and subject;
// its sequence orders the transitions of one cycle, which share a time
// (inactive->pending->firing when `for` is 0).
func (h *history) record(s *Sample, events []Event) error {
	if h == nil || h.readOnly {
		return nil
	}
	v, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("monitor: history: encode sample: %w", err)
	}
	evs := make([]index.HistoryEvent, 0, len(events))
	for i, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("monitor: history: encode event: %w", err)
		}
		name := append(append([]byte(ev.Rule), 0), ev.Subject...)
		evs = append(evs, index.HistoryEvent{Time: ev.Time, Seq: i, Name: name, Value: b})
	}
	if err := h.store.Record(s.Time, v, evs); err != nil {
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
	if err := h.store.Trim(now.Add(-metrics), now.Add(-alerts)); err != nil {
		return fmt.Errorf("monitor: history: %w", err)
	}
	return nil
}

// events calls fn for each event in [from, to), oldest first (newest first
// when reverse). fn may return io.EOF to stop.
func (h *history) events(from, to time.Time, reverse bool, fn func(Event) error) error {
	return h.store.Events(from, to, reverse, func(k, v []byte) error {
		var ev Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return fmt.Errorf("monitor: history: event %x: %w", k, err)
		}
		return fn(ev)
	})
}

// samples calls fn for each sample in [from, to), oldest first.
func (h *history) samples(from, to time.Time, fn func(*Sample) error) error {
	return h.store.Samples(from, to, func(k, v []byte) error {
		s := &Sample{}
		if err := json.Unmarshal(v, s); err != nil {
			return fmt.Errorf("monitor: history: sample %x: %w", k, err)
		}
		return fn(s)
	})
}

// latestSample returns the time of the newest stored sample.
func (h *history) latestSample() (time.Time, bool, error) {
	at, found, err := h.store.LatestSample()
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
