package main

import (
	"fmt"
	"strings"
	"time"
)

// Freshness follows the schedule: a source's backups are stale (the
// monitor's backup_stale) once its last successful snapshot is older than
// the longest gap between two consecutive firings of its timers (all of
// them together: the same schedule `citadelfs systemd` generates, defaults
// included), plus a grace of that gap again, at least 15 minutes and at
// most 2 hours, plus how long the source's last attempt took. A 15-minute
// configs timer is stale after 30 minutes (it was 26 hours for every
// source), a daily one after 26 hours. An explicit monitor.backup_max_age
// in the config applies to every source instead.

const (
	minFreshnessGrace = 15 * time.Minute
	maxFreshnessGrace = 2 * time.Hour
	// freshnessWindow is how far ahead firings are enumerated: two years
	// and a day, so a yearly schedule fires twice and every month length
	// and DST change is seen.
	freshnessWindow = (2*366 + 1) * 24 * time.Hour
)

// sourceMaxAges is each configured source's allowed age before the last
// attempt's duration is added (nil when the config sets backup_max_age, or
// the schedule cannot be read).
func sourceMaxAges(cfg *config, from time.Time) map[string]time.Duration {
	if cfg.Monitor.BackupMaxAge != 0 {
		return nil
	}
	timers, _, err := snapshotTimers(cfg)
	if err != nil {
		return nil
	}
	crons := map[string][]string{}
	for _, t := range timers {
		crons[t.Label] = append(crons[t.Label], t.Cron)
	}
	out := map[string]time.Duration{}
	for label, cs := range crons {
		gap, err := longestCronGap(cs, from, freshnessWindow)
		if err != nil {
			continue
		}
		out[label] = gap + min(max(gap, minFreshnessGrace), maxFreshnessGrace)
	}
	return out
}

// cronSet is a parsed five-field cron expression: which minutes, hours,
// days of month, months and weekdays match.
type cronSet struct {
	min  [60]bool
	hour [24]bool
	dom  [32]bool
	mon  [13]bool
	dow  [7]bool
}

func parseCronSet(expr string) (*cronSet, error) {
	// cronToOnCalendar refuses what has no single meaning (a day of month
	// with a weekday, weekday steps, L/W/#): what passes it matches when
	// every field matches.
	if _, err := cronToOnCalendar(expr); err != nil {
		return nil, err
	}
	e := expandCronMacro(strings.TrimSpace(expr))
	f := strings.Fields(e)
	c := &cronSet{}
	fill := func(s string, lo, hi int, names map[string]int, set []bool) error {
		vals, all, err := cronValues(s, lo, hi, names)
		if err != nil {
			return err
		}
		if all {
			for v := lo; v <= hi; v++ {
				set[v%len(set)] = true
			}
			return nil
		}
		for _, v := range vals {
			set[v%len(set)] = true
		}
		return nil
	}
	for _, fl := range []struct {
		s      string
		lo, hi int
		names  map[string]int
		set    []bool
	}{{f[0], 0, 59, nil, c.min[:]}, {f[1], 0, 23, nil, c.hour[:]}, {f[2], 1, 31, nil, c.dom[:]}, {f[3], 1, 12, monthNames, c.mon[:]}, {f[4], 0, 7, dayNames, c.dow[:]}} {
		if err := fill(fl.s, fl.lo, fl.hi, fl.names, fl.set); err != nil {
			return nil, fmt.Errorf("cron %q: %v", expr, err)
		}
	}
	return c, nil
}

func (c *cronSet) matchesDay(d time.Time) bool {
	return c.mon[d.Month()] && c.dom[d.Day()] && c.dow[d.Weekday()]
}

// longestCronGap is the longest time between two consecutive firings of
// any of crons, in local time, over window from from. Fewer than two
// firings make the window itself the gap.
func longestCronGap(crons []string, from time.Time, window time.Duration) (time.Duration, error) {
	sets := make([]*cronSet, 0, len(crons))
	for _, e := range crons {
		c, err := parseCronSet(e)
		if err != nil {
			return 0, err
		}
		sets = append(sets, c)
	}
	loc := from.Location()
	end := from.Add(window)
	var last time.Time
	var longest time.Duration
	fired := 0
	for day := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc); day.Before(end); day = day.AddDate(0, 0, 1) {
		var today []*cronSet
		for _, c := range sets {
			if c.matchesDay(day) {
				today = append(today, c)
			}
		}
		if len(today) == 0 {
			continue
		}
		for h := 0; h < 24; h++ {
			for m := 0; m < 60; m++ {
				hit := false
				for _, c := range today {
					if c.hour[h] && c.min[m] {
						hit = true
						break
					}
				}
				if !hit {
					continue
				}
				t := time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, loc)
				if t.Before(from) || !t.Before(end) || !t.After(last) {
					continue // outside the window, or a DST repeat
				}
				if fired > 0 && t.Sub(last) > longest {
					longest = t.Sub(last)
				}
				last = t
				fired++
			}
		}
	}
	if fired < 2 {
		return window, nil
	}
	return longest, nil
}
