package main

import (
	"fmt"
	"strconv"
	"strings"
)

// cronToOnCalendar converts a five-field cron expression (minute hour
// day-of-month month day-of-week, as in the seed's backup_schedule) or a
// macro (@hourly, @daily, @weekly, @monthly, @yearly) to a systemd
// OnCalendar= expression with the same firing times.
//
// Supported per field: *, N, A-B, */S, A-B/S, N/S and comma lists of those;
// month and weekday names (jan, sun). Ranges with a step and weekdays are
// written out as lists, so the result never depends on how systemd reads a
// stepped range. Refused, with an error that says why: @reboot, a restricted
// day of month together with a restricted weekday (cron fires when either
// matches, OnCalendar only when both do), steps on weekdays, values out of
// range, and anything else cron implementations disagree on (L, W, #, ?).
func cronToOnCalendar(expr string) (string, error) {
	e := expandCronMacro(strings.TrimSpace(expr))
	if strings.EqualFold(e, "@reboot") {
		return "", fmt.Errorf("cron %q: @reboot has no calendar time; use a systemd unit WantedBy=multi-user.target instead", expr)
	}
	f := strings.Fields(e)
	if len(f) != 5 {
		return "", fmt.Errorf("cron %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", expr, len(f))
	}
	min, err := cronField(f[0], 0, 59, nil, 2)
	if err != nil {
		return "", fmt.Errorf("cron %q: minute: %v", expr, err)
	}
	hour, err := cronField(f[1], 0, 23, nil, 2)
	if err != nil {
		return "", fmt.Errorf("cron %q: hour: %v", expr, err)
	}
	dom, err := cronField(f[2], 1, 31, nil, 2)
	if err != nil {
		return "", fmt.Errorf("cron %q: day of month: %v", expr, err)
	}
	mon, err := cronField(f[3], 1, 12, monthNames, 2)
	if err != nil {
		return "", fmt.Errorf("cron %q: month: %v", expr, err)
	}
	dow, err := cronWeekdays(f[4])
	if err != nil {
		return "", fmt.Errorf("cron %q: day of week: %v", expr, err)
	}
	if dom != "*" && dow != "" {
		return "", fmt.Errorf("cron %q: both day of month and day of week are restricted: cron runs when either matches, systemd only when both do; split it into two schedules", expr)
	}
	out := fmt.Sprintf("*-%s-%s %s:%s:00", mon, dom, hour, min)
	if dow != "" {
		out = dow + " " + out
	}
	return out, nil
}

// expandCronMacro turns @hourly, @daily (@midnight), @weekly, @monthly and
// @yearly (@annually) into their five fields; anything else is returned as
// it is.
func expandCronMacro(e string) string {
	switch strings.ToLower(e) {
	case "@hourly":
		return "0 * * * *"
	case "@daily", "@midnight":
		return "0 0 * * *"
	case "@weekly":
		return "0 0 * * 0"
	case "@monthly":
		return "0 0 1 * *"
	case "@yearly", "@annually":
		return "0 0 1 1 *"
	}
	return e
}

var monthNames = map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}
var dayNames = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
var systemdDays = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// cronValues expands one cron field into its sorted values (nil for a bare
// "*").
func cronValues(s string, lo, hi int, names map[string]int) ([]int, bool, error) {
	if s == "*" {
		return nil, true, nil
	}
	num := func(v string) (int, error) {
		if n, ok := names[strings.ToLower(v)]; ok {
			return n, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", v)
		}
		if n < lo || n > hi {
			return 0, fmt.Errorf("%d is outside %d-%d", n, lo, hi)
		}
		return n, nil
	}
	seen := map[int]bool{}
	var vals []int
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			return nil, false, fmt.Errorf("empty list element in %q", s)
		}
		rng, stepS, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepS)
			if err != nil || n < 1 {
				return nil, false, fmt.Errorf("step %q is not a positive number", stepS)
			}
			step = n
		}
		var a, b int
		switch {
		case rng == "*":
			a, b = lo, hi
		case strings.Contains(rng, "-"):
			as, bs, _ := strings.Cut(rng, "-")
			var err error
			if a, err = num(as); err != nil {
				return nil, false, err
			}
			if b, err = num(bs); err != nil {
				return nil, false, err
			}
			if b < a {
				return nil, false, fmt.Errorf("range %q runs backwards", rng)
			}
		default:
			var err error
			if a, err = num(rng); err != nil {
				return nil, false, err
			}
			b = a
			if hasStep {
				b = hi
			}
		}
		for v := a; v <= b; v += step {
			if !seen[v] {
				seen[v] = true
				vals = append(vals, v)
			}
		}
	}
	sortInts(vals)
	return vals, false, nil
}

func sortInts(v []int) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// cronField renders a minute, hour, day or month field for OnCalendar: "*",
// "00/15" for a step over the whole range, or a list.
func cronField(s string, lo, hi int, names map[string]int, width int) (string, error) {
	if strings.ContainsAny(s, "LW#?") {
		return "", fmt.Errorf("%q: L, W, # and ? are not portable cron and cannot be converted", s)
	}
	if rest, ok := strings.CutPrefix(s, "*/"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			return "", fmt.Errorf("step %q is not a positive number", rest)
		}
		return fmt.Sprintf("%0*d/%d", width, lo, n), nil
	}
	vals, all, err := cronValues(s, lo, hi, names)
	if err != nil {
		return "", err
	}
	if all {
		return "*", nil
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf("%0*d", width, v)
	}
	return strings.Join(parts, ","), nil
}

// cronWeekdays renders the weekday field as systemd day names ("" for any
// day); 7 is Sunday, as in cron.
func cronWeekdays(s string) (string, error) {
	if s == "*" {
		return "", nil
	}
	if strings.Contains(s, "/") {
		return "", fmt.Errorf("%q: a step over weekdays cannot be converted; list the days", s)
	}
	if strings.ContainsAny(s, "LW#?") {
		return "", fmt.Errorf("%q: L, W, # and ? are not portable cron and cannot be converted", s)
	}
	vals, _, err := cronValues(s, 0, 7, dayNames)
	if err != nil {
		return "", err
	}
	has := [7]bool{}
	for _, v := range vals {
		has[v%7] = true
	}
	var names []string
	// Monday first, as systemd prints them.
	for _, d := range []int{1, 2, 3, 4, 5, 6, 0} {
		if has[d] {
			names = append(names, systemdDays[d])
		}
	}
	return strings.Join(names, ","), nil
}
