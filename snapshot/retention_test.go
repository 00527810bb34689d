package snapshot

import (
	"sort"
	"strings"
	"testing"
	"time"

	"citadelfs/index"
)

// snap is a snapshot of labels at local time v ("2006-01-02 15:04" in loc,
// or RFC 3339 when it has a zone) with tags.
type snapDef struct {
	at     string
	labels string // comma-separated, default "configs"
	tags   string // comma-separated
}

func mkSnaps(t *testing.T, loc *time.Location, defs []snapDef) []*Snapshot {
	t.Helper()
	var out []*Snapshot
	for i, d := range defs {
		tm, err := time.Parse(time.RFC3339, d.at)
		if err != nil {
			if tm, err = time.ParseInLocation("2006-01-02 15:04", d.at, loc); err != nil {
				t.Fatal(err)
			}
		}
		s := &Snapshot{Manifest: Manifest{Version: 1, Time: tm}}
		s.ID[0], s.ID[1] = byte(i>>8), byte(i)
		ls := d.labels
		if ls == "" {
			ls = "configs"
		}
		for _, l := range strings.Split(ls, ",") {
			s.Sources = append(s.Sources, Source{Label: l, Tree: index.ID{1}})
		}
		if d.tags != "" {
			s.Tags = strings.Split(d.tags, ",")
		}
		out = append(out, s)
	}
	return out
}

func at(list ...string) []snapDef {
	var out []snapDef
	for _, a := range list {
		out = append(out, snapDef{at: a})
	}
	return out
}

// every is n snapshots from start (local) at step.
func every(loc *time.Location, start string, step time.Duration, n int) []snapDef {
	t0, err := time.ParseInLocation("2006-01-02 15:04", start, loc)
	if err != nil {
		panic(err)
	}
	var out []snapDef
	for i := 0; i < n; i++ {
		out = append(out, snapDef{at: t0.Add(time.Duration(i) * step).Format(time.RFC3339)})
	}
	return out
}

// kept lists the kept snapshots as local "2006-01-02 15:04 MST" (newest
// first), with their reasons.
func kept(ds []Decision, loc *time.Location) string {
	var out []string
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Snapshot.Time.After(ds[j].Snapshot.Time) })
	for _, d := range ds {
		if d.Keep {
			out = append(out, d.Snapshot.Time.In(loc).Format("2006-01-02 15:04 MST")+" "+strings.Join(d.Reasons, "+"))
		}
	}
	return strings.Join(out, "\n")
}

func TestApplyPolicyTable(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	cases := []struct {
		name   string
		snaps  []snapDef
		policy Policy
		want   []string
	}{
		{
			name: "several a day: the newest of each day",
			snaps: at("2026-11-24 02:00", "2026-11-24 08:00", "2026-11-24 20:00",
				"2026-11-25 02:00", "2026-11-25 23:59", "2026-11-26 00:00", "2026-11-26 00:15"),
			policy: Policy{Daily: 2},
			want:   []string{"2026-11-26 00:15 CET daily", "2026-11-25 23:59 CET daily"},
		},
		{
			name:   "days without snapshots are not counted",
			snaps:  at("2026-11-01 02:00", "2026-11-10 02:00", "2026-11-20 02:00", "2026-11-20 03:00"),
			policy: Policy{Daily: 3},
			want:   []string{"2026-11-20 03:00 CET daily", "2026-11-10 02:00 CET daily", "2026-11-01 02:00 CET daily"},
		},
		{
			// 2026-03-29 02:00 CET jumps to 03:00 CEST: a 23-hour day.
			name: "DST starts: the day is a local day, UTC midnight is not",
			snaps: []snapDef{
				{at: "2026-03-28T22:30:00Z"}, // 23:30 CET on the 28th
				{at: "2026-03-28T23:30:00Z"}, // 00:30 CET on the 29th
				{at: "2026-03-29T21:30:00Z"}, // 23:30 CEST on the 29th
				{at: "2026-03-29T22:30:00Z"}, // 00:30 CEST on the 30th
			},
			policy: Policy{Daily: 3},
			want:   []string{"2026-03-30 00:30 CEST daily", "2026-03-29 23:30 CEST daily", "2026-03-28 23:30 CET daily"},
		},
		{
			name:   "DST starts: hourly across the missing hour",
			snaps:  every(berlin, "2026-03-29 00:30", 30*time.Minute, 6), // 00:30 01:00 01:30 | 03:00 03:30 04:00 CEST
			policy: Policy{Hourly: 3},
			want:   []string{"2026-03-29 04:00 CEST hourly", "2026-03-29 03:30 CEST hourly", "2026-03-29 01:30 CET hourly"},
		},
		{
			// 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:xx twice.
			name:   "DST ends: the repeated hour is two hours",
			snaps:  every(berlin, "2026-10-25 01:40", 30*time.Minute, 5), // 01:40 02:10 02:40 CEST, 02:10 02:40 CET
			policy: Policy{Hourly: 3, Daily: 1},
			want:   []string{"2026-10-25 02:40 CET hourly+daily", "2026-10-25 02:40 CEST hourly", "2026-10-25 01:40 CEST hourly"},
		},
		{
			name:   "DST ends: a 25-hour day is one day",
			snaps:  every(berlin, "2026-10-24 23:00", time.Hour, 27), // to 01:00 CET on the 26th
			policy: Policy{Daily: 2},
			want:   []string{"2026-10-26 00:00 CET daily", "2026-10-25 23:00 CET daily"},
		},
		{
			name:   "month ends, leap February",
			snaps:  at("2028-01-31 23:59", "2028-02-01 00:00", "2028-02-29 23:00", "2028-03-01 00:00", "2028-03-31 12:00", "2028-04-30 23:59"),
			policy: Policy{Monthly: 3},
			want:   []string{"2028-04-30 23:59 CEST monthly", "2028-03-31 12:00 CEST monthly", "2028-02-29 23:00 CET monthly"},
		},
		{
			name: "year boundary: ISO week 53 spans it, years split it",
			snaps: at("2026-12-27 12:00", // Sunday, W52
				"2026-12-28 12:00",  // Monday, W53
				"2026-12-31 23:30",  // Thursday, W53, 2026
				"2027-01-01 00:30",  // Friday, W53, 2027
				"2027-01-04 09:00"), // Monday, 2027-W01
			policy: Policy{Weekly: 3, Yearly: 2},
			want: []string{"2027-01-04 09:00 CET weekly+yearly", "2027-01-01 00:30 CET weekly",
				"2026-12-31 23:30 CET yearly", "2026-12-27 12:00 CET weekly"},
		},
		{
			name: "year boundary is local: 23:30 UTC on Dec 31 is next year in Berlin",
			snaps: []snapDef{
				{at: "2026-12-31T22:30:00Z"}, // 23:30 CET, 2026
				{at: "2026-12-31T23:30:00Z"}, // 00:30 CET, 2027
			},
			policy: Policy{Yearly: 2},
			want:   []string{"2027-01-01 00:30 CET yearly", "2026-12-31 23:30 CET yearly"},
		},
		{
			name: "tags keep whatever the counts drop",
			snaps: []snapDef{
				{at: "2026-11-01 02:00", tags: "monthly"}, {at: "2026-11-02 02:00"},
				{at: "2026-11-03 02:00", tags: "daily,keep"}, {at: "2026-11-04 02:00"},
			},
			policy: Policy{Last: 1, KeepTags: []string{"monthly", "keep"}},
			want:   []string{"2026-11-04 02:00 CET last", "2026-11-03 02:00 CET tag keep", "2026-11-01 02:00 CET tag monthly"},
		},
		{
			name:   "hourly keeps the newest of each hour",
			snaps:  every(berlin, "2026-11-26 09:00", 15*time.Minute, 12), // 09:00 .. 11:45
			policy: Policy{Hourly: 2},
			want:   []string{"2026-11-26 11:45 CET hourly", "2026-11-26 10:45 CET hourly"},
		},
		{
			// The seed: configs every 15 minutes, each kept for 30 days,
			// then one a day. 30 days before Nov 30 02:00 is Oct 31 02:00
			// local, across the DST change (a calendar span, not 720h).
			name: "within 30d, then daily",
			snaps: append(every(berlin, "2026-10-31 01:45", 15*time.Minute, 3),
				at("2026-10-30 12:00", "2026-10-29 12:00", "2026-11-30 02:00")...),
			policy: Policy{Within: Span{Days: 30}, Daily: 3},
			want: []string{"2026-11-30 02:00 CET within 30d+daily", "2026-10-31 02:15 CET within 30d+daily",
				"2026-10-31 02:00 CET within 30d", "2026-10-30 12:00 CET daily"},
		},
		{
			name:   "within counts from the newest snapshot, not from now",
			snaps:  at("2020-01-01 00:00", "2020-01-01 12:00", "2019-12-31 23:00"),
			policy: Policy{Within: Span{Hours: 12}},
			want:   []string{"2020-01-01 12:00 CET within 12h", "2020-01-01 00:00 CET within 12h"},
		},
		{
			name:   "within a month from a month's end clamps to February's",
			snaps:  at("2027-03-31 10:00", "2027-02-28 10:00", "2027-02-28 09:59", "2027-03-02 10:00"),
			policy: Policy{Within: Span{Months: 1}},
			want:   []string{"2027-03-31 10:00 CEST within 1m", "2027-03-02 10:00 CET within 1m", "2027-02-28 10:00 CET within 1m"},
		},
		{
			name: "labels are retained apart",
			snaps: []snapDef{
				{at: "2026-11-26 02:00", labels: "models"}, {at: "2026-11-25 02:00", labels: "models"},
				{at: "2026-11-26 02:15"}, {at: "2026-11-26 02:30"},
			},
			policy: Policy{Last: 1},
			want:   []string{"2026-11-26 02:30 CET last", "2026-11-26 02:00 CET last"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := ApplyPolicy(mkSnaps(t, berlin, tc.snaps), tc.policy, berlin)
			if len(ds) != len(tc.snaps) {
				t.Fatalf("%d decisions for %d snapshots", len(ds), len(tc.snaps))
			}
			if got, want := kept(ds, berlin), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("kept:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// Each source's own policy applies to its snapshots; a snapshot holding two
// sources with different policies stays when either keeps it.
func TestApplySourcePolicies(t *testing.T) {
	loc := time.UTC
	snaps := mkSnaps(t, loc, []snapDef{
		{at: "2026-11-26 02:00", labels: "models"}, {at: "2026-11-25 02:00", labels: "models"},
		{at: "2026-11-26 02:15"}, {at: "2026-11-26 02:30"}, {at: "2026-11-25 02:30"},
		{at: "2026-11-20 02:00", labels: "configs,models"}, {at: "2026-11-19 02:00", labels: "configs,models"},
		{at: "2026-11-18 02:00", labels: "configs,models"},
	})
	pol := map[string]Policy{"models": {Daily: 1}, "configs": {Within: Span{Days: 1}}}
	ds := ApplySourcePolicies(snaps, func(l string) Policy { return pol[l] }, loc)
	want := strings.Join([]string{
		"2026-11-26 02:30 UTC within 1d",
		"2026-11-26 02:15 UTC within 1d",
		"2026-11-26 02:00 UTC daily",
		"2026-11-25 02:30 UTC within 1d",
		"2026-11-20 02:00 UTC configs:within 1d+models:daily",
		"2026-11-19 02:00 UTC configs:within 1d",
	}, "\n")
	if got := kept(ds, loc); got != want {
		t.Errorf("kept:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseWithin(t *testing.T) {
	for in, want := range map[string]Span{"30d": {Days: 30}, "2w": {Days: 14}, "12h": {Hours: 12}, "1y6m": {Years: 1, Months: 6}, "1y2m3d4h": {1, 2, 3, 4}} {
		got, err := ParseWithin(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
		if in != "2w" && got.String() != in {
			t.Errorf("%q prints as %q", in, got.String())
		}
	}
	for _, bad := range []string{"", "30", "d", "30s", "5min", "-3d", "1.5d", "30 d", "9999999d"} {
		if _, err := ParseWithin(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
