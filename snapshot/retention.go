package snapshot

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"citadelfs/index"
)

// Policy says how many snapshots to keep per period. Each rule keeps the
// newest snapshot of each of its last N periods that have snapshots (the
// restic/borg semantics operators know); a snapshot kept by any rule stays.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	// Within keeps every snapshot of a group taken within this span before
	// the group's newest snapshot (restic's --keep-within). It counts back
	// from the newest snapshot, not from now, so a backup job that stopped
	// a month ago does not make forget drop what it kept: the seed keeps
	// every 15-minute config copy for 30 days this way.
	Within Span
	// KeepTags keeps every snapshot carrying one of these tags.
	KeepTags []string
}

// Empty reports whether the policy keeps nothing by itself.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 &&
		p.Within.IsZero() && len(p.KeepTags) == 0
}

// equal reports whether p and q keep the same snapshots.
func (p Policy) equal(q Policy) bool {
	return p.Last == q.Last && p.Hourly == q.Hourly && p.Daily == q.Daily && p.Weekly == q.Weekly &&
		p.Monthly == q.Monthly && p.Yearly == q.Yearly && p.Within == q.Within && strings.Join(p.KeepTags, "\x00") == strings.Join(q.KeepTags, "\x00")
}

// Span is a calendar span: years, months, days and hours. Years and
// months move the date and clamp the day to the month's end ("1m" before
// March 31 is February 28 or 29, not Go's March 3); days are calendar days
// in the location (across a DST change a day is 23 or 25 hours); hours are
// real hours.
type Span struct {
	Years, Months, Days, Hours int
}

// IsZero reports whether the span is empty.
func (s Span) IsZero() bool { return s == Span{} }

// Before is the instant s before t, in t's location.
func (s Span) Before(t time.Time) time.Time {
	y, m, d := t.Date()
	months := int(m) - 1 - s.Months - 12*s.Years
	y, m = y+floorDiv(months, 12), time.Month(months-12*floorDiv(months, 12)+1)
	if last := time.Date(y, m+1, 0, 0, 0, 0, 0, t.Location()).Day(); d > last {
		d = last
	}
	hh, mm, ss := t.Clock()
	u := time.Date(y, m, d-s.Days, hh, mm, ss, t.Nanosecond(), t.Location())
	return u.Add(-time.Duration(s.Hours) * time.Hour)
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func (s Span) String() string {
	var b strings.Builder
	for _, u := range []struct {
		n int
		c string
	}{{s.Years, "y"}, {s.Months, "m"}, {s.Days, "d"}, {s.Hours, "h"}} {
		if u.n != 0 {
			fmt.Fprintf(&b, "%d%s", u.n, u.c)
		}
	}
	return b.String()
}

// ParseWithin reads a span such as "30d", "2w", "12h" or "1y6m": numbers
// with the units y (years), m (months), w (weeks, 7 days), d (days) and h
// (hours), restic's notation. Minutes and seconds are refused: snapshots
// are kept by the hour at the finest.
func ParseWithin(v string) (Span, error) {
	var s Span
	rest := strings.TrimSpace(v)
	if rest == "" {
		return s, fmt.Errorf("within %q: want a span like 30d, 2w, 12h or 1y6m", v)
	}
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || i > 6 {
			return Span{}, fmt.Errorf("within %q: want a span like 30d, 2w, 12h or 1y6m (units y, m, w, d, h)", v)
		}
		n := 0
		fmt.Sscan(rest[:i], &n)
		switch rest[i] {
		case 'y':
			s.Years += n
		case 'm':
			s.Months += n
		case 'w':
			s.Days += 7 * n
		case 'd':
			s.Days += n
		case 'h':
			s.Hours += n
		default:
			return Span{}, fmt.Errorf("within %q: unknown unit %q (units y, m, w, d, h)", v, rest[i:i+1])
		}
		rest = rest[i+1:]
	}
	return s, nil
}

// ParseWithin as a flag value: --keep-within 30d.
func (s *Span) Set(v string) error {
	p, err := ParseWithin(v)
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// Type names the flag's value in help.
func (s *Span) Type() string { return "span" }

// Validate refuses negative counts. restic users write -1 for
// "unlimited"; here it would keep nothing of that kind, and forget would
// remove what the operator meant to keep.
func (p Policy) Validate() error {
	for _, c := range []struct {
		name string
		n    int
	}{{"last", p.Last}, {"hourly", p.Hourly}, {"daily", p.Daily}, {"weekly", p.Weekly}, {"monthly", p.Monthly}, {"yearly", p.Yearly}} {
		if c.n < 0 {
			return fmt.Errorf("keep %s %d: must be 0 (none of that kind) or more; there is no 'unlimited'", c.name, c.n)
		}
	}
	return nil
}

// Decision is the fate of one snapshot under a policy.
type Decision struct {
	Snapshot *Snapshot
	Keep     bool
	Reasons  []string // e.g. "daily", "weekly"
}

// ApplyPolicy decides which snapshots to keep. Snapshots are grouped by
// their set of source labels (configs every 15 minutes and models daily
// are retained independently); periods are computed in loc.
func ApplyPolicy(snaps []*Snapshot, p Policy, loc *time.Location) []Decision {
	return ApplySourcePolicies(snaps, func(string) Policy { return p }, loc)
}

// ApplySourcePolicies is ApplyPolicy with a policy per source label:
// policyOf gives each label's. A group of snapshots that hold several
// labels with different policies keeps a snapshot when any of them does
// (its reasons then name the label: "configs:within"), so no source loses
// a snapshot its own policy keeps.
func ApplySourcePolicies(snaps []*Snapshot, policyOf func(label string) Policy, loc *time.Location) []Decision {
	groups := map[string][]*Snapshot{}
	var keys []string
	for _, s := range snaps {
		k := groupKey(s)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], s)
	}
	sort.Strings(keys)
	var out []Decision
	for _, k := range keys {
		g := groups[k]
		labels := strings.Split(k, ",")
		p := policyOf(labels[0])
		same := true
		for _, l := range labels[1:] {
			same = same && policyOf(l).equal(p)
		}
		if same {
			out = append(out, applyGroup(g, p, loc)...)
			continue
		}
		var merged []Decision
		at := map[index.ID]int{}
		for _, l := range labels {
			for _, d := range applyGroup(g, policyOf(l), loc) {
				i, ok := at[d.Snapshot.ID]
				if !ok {
					i = len(merged)
					at[d.Snapshot.ID] = i
					merged = append(merged, Decision{Snapshot: d.Snapshot})
				}
				m := &merged[i]
				m.Keep = m.Keep || d.Keep
				for _, r := range d.Reasons {
					m.Reasons = append(m.Reasons, l+":"+r)
				}
			}
		}
		out = append(out, merged...)
	}
	return out
}

func groupKey(s *Snapshot) string {
	ls := make([]string, len(s.Sources))
	for i, src := range s.Sources {
		ls[i] = src.Label
	}
	sort.Strings(ls)
	return strings.Join(ls, ",")
}

type bucketRule struct {
	name  string
	count int
	key   func(t time.Time) string
}

func applyGroup(snaps []*Snapshot, p Policy, loc *time.Location) []Decision {
	sorted := append([]*Snapshot(nil), snaps...)
	slices.SortFunc(sorted, func(a, b *Snapshot) int { return Compare(b, a) }) // newest first
	rules := []*bucketRule{
		{"last", p.Last, func(t time.Time) string { return t.String() + fmt.Sprint(t.UnixNano()) }},
		// The zone offset is part of the hour: the hour repeated when DST
		// ends is two hours of real time, two buckets.
		{"hourly", p.Hourly, func(t time.Time) string { return t.Format("2006-01-02T15-0700") }},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.Yearly, func(t time.Time) string { return t.Format("2006") }},
	}
	last := make([]string, len(rules))
	out := make([]Decision, 0, len(sorted))
	var cutoff time.Time
	if len(sorted) > 0 && !p.Within.IsZero() {
		cutoff = p.Within.Before(sorted[0].Time.In(loc))
	}
	for i, s := range sorted {
		d := Decision{Snapshot: s}
		t := s.Time.In(loc)
		if !cutoff.IsZero() && !t.Before(cutoff) {
			d.Keep = true
			d.Reasons = append(d.Reasons, "within "+p.Within.String())
		}
		for ri, r := range rules {
			if r.count <= 0 {
				continue
			}
			k := r.key(t)
			if r.name == "last" {
				k = fmt.Sprint(i)
			}
			if k != last[ri] {
				last[ri] = k
				r.count--
				d.Keep = true
				d.Reasons = append(d.Reasons, r.name)
			}
		}
		for _, tag := range p.KeepTags {
			if s.HasTag(tag) {
				d.Keep = true
				d.Reasons = append(d.Reasons, "tag "+tag)
			}
		}
		out = append(out, d)
	}
	return out
}
