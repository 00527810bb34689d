package monitor

import (
	"sort"
	"time"
)

// Alert states.
const (
	StatePending  = "pending"  // the condition holds, not yet for the rule's `for`
	StateFiring   = "firing"   // the condition has held for `for`
	StateResolved = "resolved" // a firing alert's condition cleared
	StateInactive = "inactive" // a pending alert's condition cleared before it fired
)

// Alert is one rule's condition on one subject (a model, a GPU, a path).
type Alert struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Subject  string `json:"subject"`
	State    string `json:"state"`
	Message  string `json:"message"`
	// Value and Threshold are the latest reading and the fire threshold of
	// a threshold rule (absent for yes/no rules).
	Value     *float64 `json:"value,omitempty"`
	Threshold *float64 `json:"threshold,omitempty"`
	// ActiveSince is when the condition started to hold.
	ActiveSince time.Time `json:"active_since"`
	// FiredAt is when the alert became firing (zero while pending).
	FiredAt time.Time `json:"fired_at,omitzero"`
	// ResolvedAt is when a firing alert resolved.
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
}

// Event is one alert transition, as logged and kept in history.
type Event struct {
	Time        time.Time `json:"time"`
	Rule        string    `json:"rule"`
	Severity    string    `json:"severity"`
	Subject     string    `json:"subject"`
	From        string    `json:"from"`
	To          string    `json:"to"`
	Message     string    `json:"message"`
	Value       *float64  `json:"value,omitempty"`
	ActiveSince time.Time `json:"active_since"`
}

type alertKey struct{ rule, subject string }

// alertState is an active (pending or firing) alert and its bookkeeping.
type alertState struct {
	Alert
	// clearSince is when a firing alert's condition first cleared
	// (zero while it holds), for the rule's clear_for.
	clearSince time.Time
}

// engine holds the alert state machine. It is not safe for concurrent use;
// Monitor serialises evaluations.
type engine struct {
	rules  []*ruleDef
	active map[alertKey]*alertState
}

func newEngine(rules []*ruleDef) *engine {
	return &engine{rules: rules, active: map[alertKey]*alertState{}}
}

// evaluate runs every rule on s at now and returns the transitions.
//
// A threshold rule's condition starts when the value goes above the
// threshold and holds, once started, until the value is at or below the
// clear point: the gap between the two is the hysteresis that keeps a
// value hovering at the threshold from flapping. A started condition is
// pending until it has held for the rule's `for`, then firing; a firing
// alert resolves when its condition has been clear for `clear_for`.
func (e *engine) evaluate(now time.Time, s *Sample) []Event {
	var events []Event
	for _, r := range e.rules {
		if r.collector != "" && !s.collectorOK(r.collector) {
			continue // no data: every alert of this rule keeps its state
		}
		seen := map[string]bool{}
		for _, c := range r.checks(s) {
			seen[c.subject] = true
			if c.unknown {
				continue
			}
			events = e.step(now, r, c, events)
		}
		// Subjects that disappeared (a model removed from the config, a
		// source deleted) end their alerts.
		for k, st := range e.active {
			if k.rule == r.name && !seen[k.subject] {
				events = e.end(now, r, st, "no longer present", events)
			}
		}
	}
	return events
}

func (e *engine) step(now time.Time, r *ruleDef, c check, events []Event) []Event {
	k := alertKey{r.name, c.subject}
	st := e.active[k]
	var holds bool
	if st == nil {
		holds = c.value > c.threshold
	} else {
		holds = c.value > c.clear
	}
	if !holds {
		if st == nil {
			return events
		}
		if st.State == StatePending {
			return e.end(now, r, st, c.message, events)
		}
		if st.clearSince.IsZero() {
			st.clearSince = now
		}
		if now.Sub(st.clearSince) >= r.cfg.ClearFor {
			return e.end(now, r, st, c.message, events)
		}
		return events
	}
	if st == nil {
		st = &alertState{Alert: Alert{Rule: r.name, Severity: r.cfg.Severity, Subject: c.subject, State: StatePending, ActiveSince: now}}
		e.active[k] = st
		st.update(c)
		events = append(events, st.event(now, "", StatePending))
	}
	st.clearSince = time.Time{}
	st.update(c)
	if st.State == StatePending && now.Sub(st.ActiveSince) >= r.pendingFor() {
		st.State, st.FiredAt = StateFiring, now
		events = append(events, st.event(now, StatePending, StateFiring))
	}
	return events
}

// end removes an active alert: a firing one resolves, a pending one goes
// back to inactive.
func (e *engine) end(now time.Time, r *ruleDef, st *alertState, message string, events []Event) []Event {
	delete(e.active, alertKey{st.Rule, st.Subject})
	from := st.State
	to := StateInactive
	if from == StateFiring {
		to = StateResolved
		st.ResolvedAt = now
	}
	if message != "" {
		st.Message = message
	}
	st.State = to
	return append(events, st.event(now, from, to))
}

func (st *alertState) update(c check) {
	st.Message = c.message
	if c.state {
		st.Value, st.Threshold = nil, nil
		return
	}
	v, t := c.value, c.threshold
	st.Value, st.Threshold = &v, &t
}

func (st *alertState) event(now time.Time, from, to string) Event {
	ev := Event{Time: now, Rule: st.Rule, Severity: st.Severity, Subject: st.Subject, From: from, To: to,
		Message: st.Message, ActiveSince: st.ActiveSince}
	if st.Value != nil {
		v := *st.Value
		ev.Value = &v
	}
	if ev.From == "" {
		ev.From = StateInactive
	}
	return ev
}

// alerts returns copies of the active alerts, most severe first, then by
// rule and subject.
func (e *engine) alerts() []Alert {
	out := make([]Alert, 0, len(e.active))
	for _, st := range e.active {
		out = append(out, st.Alert)
	}
	sortAlerts(out)
	return out
}

func sortAlerts(a []Alert) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].Severity != a[j].Severity {
			return a[i].Severity == SeverityCritical
		}
		if a[i].Rule != a[j].Rule {
			return a[i].Rule < a[j].Rule
		}
		return a[i].Subject < a[j].Subject
	})
}

// restore re-creates active alerts from the history of events, so that a
// restarted daemon keeps an alert's original times instead of starting it
// over. Alerts whose last event is "firing" come back; pending ones only
// when watched is true (the history has samples up to just before now, so
// nobody stopped watching the condition), which also lets `monitor --once`
// run by a timer carry a pending condition to firing across runs. Alerts of
// rules no longer enabled stay gone.
func (e *engine) restore(events []Event, watched bool) {
	last := map[alertKey]Event{}
	for _, ev := range events {
		last[alertKey{ev.Rule, ev.Subject}] = ev
	}
	enabled := map[string]*ruleDef{}
	for _, r := range e.rules {
		enabled[r.name] = r
	}
	for k, ev := range last {
		r, ok := enabled[k.rule]
		if !ok || !(ev.To == StateFiring || watched && ev.To == StatePending) {
			continue
		}
		st := &alertState{Alert: Alert{Rule: ev.Rule, Severity: r.cfg.Severity, Subject: ev.Subject, State: ev.To,
			Message: ev.Message, ActiveSince: ev.ActiveSince}}
		if ev.To == StateFiring {
			st.FiredAt = ev.Time
		}
		if ev.Value != nil {
			v := *ev.Value
			st.Value = &v
		}
		e.active[k] = st
	}
}

// Health is the one-word summary of a set of alerts.
const (
	HealthOK       = "OK"
	HealthWarning  = "WARNING"
	HealthCritical = "CRITICAL"
	HealthUnknown  = "UNKNOWN" // nothing collected yet
)

// HealthOf returns the worst severity among alerts in the given states
// (firing only for the status files; pending too for one-shot checks).
func HealthOf(alerts []Alert, includePending bool) string {
	h := HealthOK
	for _, a := range alerts {
		if a.State != StateFiring && !(includePending && a.State == StatePending) {
			continue
		}
		if a.Severity == SeverityCritical {
			return HealthCritical
		}
		h = HealthWarning
	}
	return h
}
