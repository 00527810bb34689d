package snapshot

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Policy says how many snapshots to keep per period. Each rule keeps the
// newest snapshot of each of its last N periods that have snapshots (the
// restic/borg semantics operators know); a snapshot kept by any rule stays.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	// KeepTags keeps every snapshot carrying one of these tags.
	KeepTags []string
}

// Empty reports whether the policy keeps nothing by itself.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 && len(p.KeepTags) == 0
}

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
		out = append(out, applyGroup(groups[k], p, loc)...)
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
		{"hourly", p.Hourly, func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.Yearly, func(t time.Time) string { return t.Format("2006") }},
	}
	last := make([]string, len(rules))
	out := make([]Decision, 0, len(sorted))
	for i, s := range sorted {
		d := Decision{Snapshot: s}
		t := s.Time.In(loc)
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
