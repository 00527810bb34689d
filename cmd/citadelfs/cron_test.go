package main

import (
	"os/exec"
	"strings"
	"testing"
)

func TestCronToOnCalendar(t *testing.T) {
	cases := []struct{ cron, want string }{
		{"0 2 * * *", "*-*-* 02:00:00"},
		{"0 3 * * 0", "Sun *-*-* 03:00:00"},
		{"0 4 1 * *", "*-*-01 04:00:00"},
		{"*/15 * * * *", "*-*-* *:00/15:00"},
		{"0 * * * *", "*-*-* *:00:00"},
		{"30 8-17 * * 1-5", "Mon,Tue,Wed,Thu,Fri *-*-* 08,09,10,11,12,13,14,15,16,17:30:00"},
		{"0,30 6,18 * * *", "*-*-* 06,18:00,30:00"},
		{"0 0-12/4 * * *", "*-*-* 00,04,08,12:00:00"},
		{"5/20 * * * *", "*-*-* *:05,25,45:00"},
		{"0 0 * * 7", "Sun *-*-* 00:00:00"},
		{"0 0 * * sat,sun", "Sat,Sun *-*-* 00:00:00"},
		{"0 5 1 jan,jul *", "*-01,07-01 05:00:00"},
		{"0 0 */2 * *", "*-*-01/2 00:00:00"},
		{"@daily", "*-*-* 00:00:00"},
		{"@weekly", "Sun *-*-* 00:00:00"},
		{"@monthly", "*-*-01 00:00:00"},
		{"@hourly", "*-*-* *:00:00"},
	}
	for _, tc := range cases {
		got, err := cronToOnCalendar(tc.cron)
		if err != nil {
			t.Errorf("%q: %v", tc.cron, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q: %q, want %q", tc.cron, got, tc.want)
		}
		if sa, err := exec.LookPath("systemd-analyze"); err == nil {
			if out, err := exec.Command(sa, "calendar", got).CombinedOutput(); err != nil {
				t.Errorf("%q -> %q: systemd-analyze calendar: %v\n%s", tc.cron, got, err, out)
			}
		}
	}
	for _, bad := range []struct{ cron, why string }{
		{"@reboot", "@reboot"},
		{"0 2 * *", "want 5 fields"},
		{"60 * * * *", "outside 0-59"},
		{"0 24 * * *", "outside 0-23"},
		{"0 0 0 * *", "outside 1-31"},
		{"0 0 1 * 1", "either matches"},
		{"0 0 * * */2", "step over weekdays"},
		{"0 0 L * *", "not portable"},
		{"0 5-2 * * *", "backwards"},
		{"x * * * *", "not a number"},
		{"*/0 * * * *", "positive"},
	} {
		_, err := cronToOnCalendar(bad.cron)
		if err == nil || !strings.Contains(err.Error(), bad.why) {
			t.Errorf("%q: error %v, want %q", bad.cron, err, bad.why)
		}
	}
}
