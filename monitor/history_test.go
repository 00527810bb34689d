package monitor

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"citadelfs/index"
)

func openKV(t testing.TB, dir string) *index.KV {
	t.Helper()
	kv, err := OpenHistoryKV(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func keyTimes(t testing.TB, kv *index.KV, prefix []byte) []time.Time {
	t.Helper()
	var out []time.Time
	err := kv.Scan(prefix, index.PrefixEnd(prefix), func(k, v []byte) error {
		// The layout index.HistoryStore documents: the prefix, then the
		// time as 8 big-endian bytes of unix nanoseconds.
		if len(k) < len(prefix)+8 {
			t.Fatalf("short history key %x", k)
		}
		out = append(out, time.Unix(0, int64(binary.BigEndian.Uint64(k[len(prefix):]))).UTC())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Retention on fixed timestamps: what is older than the retention goes,
// the boundary and everything newer stays, and keys of other owners in a
// shared repository index are never touched.
func TestHistoryRetention(t *testing.T) {
	kv := openKV(t, t.TempDir())
	defer kv.Close()
	now := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	h := newHistory(kv, false)
	days := func(d float64) time.Time { return now.Add(-time.Duration(d * 24 * float64(time.Hour))) }

	samples := []struct {
		at   time.Time
		kept bool
	}{
		{days(400), false},
		{days(31), false},
		{days(30).Add(-time.Nanosecond), false},
		{days(30), true}, // exactly the retention: kept
		{days(29.9), true},
		{days(1), true},
		{now, true},
	}
	events := []struct {
		at   time.Time
		kept bool
	}{
		{days(8), false},
		{days(7).Add(-time.Second), false},
		{days(7), true},
		{days(6), true},
		{now, true},
	}
	for _, s := range samples {
		if err := h.record(&Sample{Time: s.at}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range events {
		ev := Event{Time: e.at, Rule: RuleCPUHigh, Subject: "cpu", From: StateInactive, To: StatePending}
		if err := h.record(&Sample{Time: e.at.Add(time.Millisecond)}, []Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	foreign := [][]byte{[]byte("a"), []byte("b/chunk"), []byte("m"), []byte("l/lock"), []byte("s/snapshot"), []byte("z/")}
	for _, k := range foreign {
		if err := kv.Put(k, []byte("x"), false); err != nil {
			t.Fatal(err)
		}
	}

	if err := h.trim(now, 30*24*time.Hour, 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}

	var wantEvents []time.Time
	for _, e := range events {
		if e.kept {
			wantEvents = append(wantEvents, e.at)
		}
	}
	if got := keyTimes(t, kv, index.AlertsPrefix()); !equalTimes(got, wantEvents) {
		t.Errorf("events kept %v, want %v", got, wantEvents)
	}
	got := keyTimes(t, kv, index.MetricsPrefix())
	kept := map[time.Time]bool{}
	for _, g := range got {
		kept[g] = true
	}
	for _, s := range samples {
		if kept[s.at] != s.kept {
			t.Errorf("sample at %v: kept %v, want %v", s.at, kept[s.at], s.kept)
		}
	}
	for _, k := range foreign {
		if ok, err := kv.Has(k); err != nil || !ok {
			t.Errorf("trim removed foreign key %q (err %v)", k, err)
		}
	}
}

func equalTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// Through the Monitor: 40 days of cycles every 6 hours leave exactly the
// last 30 days of samples and 7 days of events.
func TestMonitorTrimsHistory(t *testing.T) {
	kv := openKV(t, t.TempDir())
	defer kv.Close()
	clock, sys := newFakeClock(), &fakeSystem{}
	o := testOptions(clock, sys)
	o.KV = kv
	o.Config.Thresholds.CPU = Rule{For: dur(0)}
	m := mustNew(t, o)
	step := 6 * time.Hour
	for i := range 40 * 4 {
		sys.set(cpuAt([]float64{95, 50}[i%2]), nil) // fires and resolves every cycle
		collect(t, m)
		clock.Advance(step)
	}
	last := clock.Now().Add(-step)
	ms := keyTimes(t, kv, index.MetricsPrefix())
	if len(ms) == 0 || !ms[len(ms)-1].Equal(last) {
		t.Fatalf("newest sample %v, want %v", ms, last)
	}
	// Trimming runs hourly and every cycle here is 6h apart, so the cut
	// was made at the last cycle: nothing older than last-30d.
	if oldest := ms[0]; oldest.Before(last.Add(-30*24*time.Hour)) || len(ms) != 30*4+1 {
		t.Fatalf("%d samples, oldest %v: want %d from %v", len(ms), oldest, 30*4+1, last.Add(-30*24*time.Hour))
	}
	es := keyTimes(t, kv, index.AlertsPrefix())
	if oldest := es[0]; oldest.Before(last.Add(-7 * 24 * time.Hour)) {
		t.Fatalf("oldest event %v older than 7 days before %v", oldest, last)
	}
	// Stored samples read back through Samples.
	n := 0
	if err := m.Samples(last.Add(-24*time.Hour), last.Add(time.Nanosecond), func(s *Sample) error {
		if s.System == nil || s.System.CPU == nil {
			t.Fatalf("stored sample lost its content: %+v", s)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("%d samples in the last day, want 5", n)
	}
}

// A restarted monitor keeps a firing alert's times; a pending one starts
// over. Recent events come back from the KV.
func TestRestoreFiringAlertsFromHistory(t *testing.T) {
	dir := t.TempDir()
	kv := openKV(t, dir)
	clock, sys := newFakeClock(), &fakeSystem{}
	models := &fakeModels{}
	o := testOptions(clock, sys)
	o.KV = kv
	o.Models = models
	o.Config.Thresholds.ModelUnhealthy = Rule{For: dur(0)}
	m := mustNew(t, o)
	sys.set(cpuAt(95), nil) // cpu_high pending (for 5m)
	models.set(ModelStatus{Name: "mixtral", Port: 11400, State: ModelUnhealthy, HTTPStatus: 500, Error: "/health answered HTTP 500"})
	t0 := clock.Now()
	collect(t, m)
	m.Close()
	kv.Close()

	clock.Advance(3 * time.Minute) // more than two intervals: cpu_high's pending is not carried over
	kv = openKV(t, dir)            // as after a daemon restart
	defer kv.Close()
	o.KV = kv
	m2 := mustNew(t, o)
	as := m2.Alerts()
	if len(as) != 1 {
		t.Fatalf("restored %+v, want only the firing model alert", as)
	}
	a := as[0]
	if a.Rule != RuleModelUnhealthy || a.State != StateFiring || !a.ActiveSince.Equal(t0) || !a.FiredAt.Equal(t0) || a.Severity != SeverityCritical {
		t.Fatalf("restored %+v", a)
	}
	body, _ := m2.Render(context.Background(), FileAlerts)
	if !bytes.Contains(body, []byte("CRITICAL model_unhealthy")) {
		t.Fatalf("status/alerts after restart:\n%s", body)
	}
	evs, err := m2.RecentEvents(10, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// inactive->pending and pending->firing for the model, inactive->pending
	// for cpu. The model's two transitions share a time; their keys once
	// collided and the first was lost.
	if len(evs) != 3 {
		t.Fatalf("recent events %v", transitions(evs))
	}
	// Still failing after the restart: no new transition, original times.
	r := collect(t, m2)
	if len(r.Events) != 1 || r.Events[0].Rule != RuleCPUHigh || r.Events[0].To != StatePending {
		t.Fatalf("events after restart %v, want only cpu_high starting over", transitions(r.Events))
	}
	if a := findAlert(r.Alerts, RuleModelUnhealthy, "mixtral"); a == nil || !a.FiredAt.Equal(t0) {
		t.Fatalf("model alert after restart %+v", a)
	}
}

// A read-only history (citadelfs status reading another process's) is
// read but never written.
func TestReadOnlyHistoryIsNotWritten(t *testing.T) {
	dir := t.TempDir()
	kv := openKV(t, dir)
	kv.Close()
	ro, err := OpenHistoryKV(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(99), nil)
	o := testOptions(clock, sys)
	o.KV, o.HistoryReadOnly = ro, true
	o.Config.Thresholds.CPU = Rule{For: dur(0)}
	m := mustNew(t, o)
	r := collect(t, m)
	if len(r.Events) == 0 {
		t.Fatal("no events to (not) write")
	}
	if n := len(keyTimes(t, ro, index.MetricsPrefix())) + len(keyTimes(t, ro, index.AlertsPrefix())); n != 0 {
		t.Fatalf("%d keys written to a read-only history", n)
	}
	// This process's transitions are still listed as recent.
	if evs, err := m.RecentEvents(10, time.Hour); err != nil || len(evs) != len(r.Events) {
		t.Fatalf("recent events %v (%v), want this cycle's %v", transitions(evs), err, transitions(r.Events))
	}
	if _, err := OpenHistoryKV(t.TempDir()+"/missing", true); err == nil {
		t.Fatal("read-only open of a missing history succeeded")
	}
}

// `monitor --once` run by a timer every minute is a new Monitor each time;
// with continuous history a pending condition still reaches firing after
// its `for`. After a gap in the history it starts over.
func TestOnceRunsCarryPendingAcrossRuns(t *testing.T) {
	dir := t.TempDir()
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(95), nil) // cpu_high: for 5m
	t0 := clock.Now()
	once := func() *Report {
		kv := openKV(t, dir)
		defer kv.Close()
		o := testOptions(clock, sys)
		o.KV = kv
		m := mustNew(t, o)
		defer m.Close()
		return collect(t, m)
	}
	for i := range 6 {
		r := once()
		a := findAlert(r.Alerts, RuleCPUHigh, "cpu")
		want := StatePending
		if i == 5 {
			want = StateFiring
		}
		if a == nil || a.State != want || !a.ActiveSince.Equal(t0) {
			t.Fatalf("run %d (t0+%dm): %+v, want %s since t0", i, i, a, want)
		}
		clock.Advance(time.Minute)
	}

	// A pending condition after a 10-minute gap is not carried over.
	sys.set(cpuAt(10), nil)
	once() // resolves
	sys.set(cpuAt(95), nil)
	t1 := clock.Now()
	once() // pending since t1
	clock.Advance(10 * time.Minute)
	r := once()
	if a := findAlert(r.Alerts, RuleCPUHigh, "cpu"); a == nil || a.State != StatePending || !a.ActiveSince.Equal(clock.Now()) || a.ActiveSince.Equal(t1) {
		t.Fatalf("after a gap: %+v, want pending from now", a)
	}
}
