package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"citadelfs/monitor"
)

// dashboardView is a status with more lines than a small terminal holds:
// alerts of each state and severity, two sources (one failed), a GPU-less
// host.
func dashboardView() statusView {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	s := &monitor.Sample{Time: now, Host: "gpu-box",
		GPUs: &monitor.GPUStats{},
		Backup: &monitor.BackupStatus{Configured: true, Repo: "/srv/repo", Sources: []monitor.SourceStatus{
			{SourceState: monitor.SourceState{Label: "configs", LastTime: now, LastResult: "ok", LastSnapshot: "f318ba5a0000", LastSuccess: now}},
			{SourceState: monitor.SourceState{Label: "models-with-a-long-name", LastTime: now, LastResult: "failed", LastError: strings.Repeat("no source could be read ", 5)}},
		}},
		Collectors: []monitor.CollectorResult{{Name: monitor.CollectorSystem, OK: true}, {Name: monitor.CollectorGPU, OK: true},
			{Name: monitor.CollectorModels, OK: true}, {Name: monitor.CollectorBackup, OK: true}},
		System: &monitor.SystemStats{},
	}
	v := statusView{Sample: s, Health: monitor.HealthCritical}
	v.Alerts = []monitor.Alert{
		{Rule: "cpu_high", Severity: monitor.SeverityWarning, Subject: "cpu", State: monitor.StatePending, Message: "cpu 99% busy", ActiveSince: now},
		{Rule: "storage_high", Severity: monitor.SeverityWarning, Subject: "/srv", State: monitor.StateFiring, Message: "100% used", ActiveSince: now},
		{Rule: "backup_failed", Severity: monitor.SeverityCritical, Subject: "models-with-a-long-name", State: monitor.StateFiring, Message: "last snapshot failed", ActiveSince: now},
	}
	for i := range 12 {
		v.Recent = append(v.Recent, monitor.Event{Time: now, Rule: "cpu_high", Subject: "cpu", To: "resolved", Message: fmt.Sprintf("event %d", i)})
	}
	return v
}

// shown feeds msgs to a dashboard holding v and returns its screen's lines.
func shown(t *testing.T, d *dashboard, msgs ...tea.Msg) []string {
	t.Helper()
	for _, m := range msgs {
		d.Update(m)
	}
	view := d.View()
	if !view.AltScreen {
		t.Fatal("the dashboard is not on the alternate screen")
	}
	return strings.Split(view.Content, "\n")
}

func newTestDashboard(color bool) *dashboard {
	v := dashboardView()
	d := &dashboard{ctx: context.Background(), interval: 2 * time.Second, color: color,
		src: func(context.Context) (statusView, error) { return v, nil }}
	d.Update(d.fetch())
	return d
}

// TestDashboardFitsTerminal: the dashboard is exactly the terminal's
// height, no line wider than it, with the alerts (firing, critical first)
// before everything but the header; a resize refits it; the footer says
// what is below and scrolling reaches it.
func TestDashboardFitsTerminal(t *testing.T) {
	for _, color := range []bool{false, true} {
		d := newTestDashboard(color)
		lines := shown(t, d, tea.WindowSizeMsg{Width: 50, Height: 15})
		check := func(w, h int) {
			t.Helper()
			if len(lines) != h {
				t.Fatalf("colour %v: %d lines on a %d-line terminal:\n%s", color, len(lines), h, strings.Join(lines, "\n"))
			}
			for _, l := range lines {
				if ansi.StringWidth(l) > w {
					t.Fatalf("colour %v: line wider than %d: %q", color, w, l)
				}
			}
		}
		check(50, 15)
		plain := make([]string, len(lines))
		for i, l := range lines {
			plain[i] = ansi.Strip(l)
		}
		text := strings.Join(plain, "\n")
		if !strings.HasPrefix(plain[0], "citadelfs status  gpu-box") || !strings.HasPrefix(plain[2], "ALERTS") ||
			!strings.Contains(plain[3], "CRITICAL backup_failed") || !strings.Contains(plain[4], "storage_high") || !strings.Contains(plain[5], "cpu_high") {
			t.Fatalf("colour %v: not header then alerts, firing critical first:\n%s", color, text)
		}
		if !strings.Contains(plain[14], "q quit") || !strings.Contains(plain[14], "lines 1-14 of") {
			t.Fatalf("colour %v: footer %q", color, plain[14])
		}
		if got := strings.Contains(strings.Join(lines, ""), ansiRed+"CRITICAL"); got != color {
			t.Fatalf("colour %v: CRITICAL in red: %v", color, got)
		}

		lines = shown(t, d, tea.WindowSizeMsg{Width: 100, Height: 40})
		check(100, 40)
		lines = shown(t, d, tea.WindowSizeMsg{Width: 30, Height: 8}, tea.KeyPressMsg{Code: tea.KeyEnd})
		check(30, 8)
		all := dashboardLines(d.view, color)
		if got, want := ansi.Strip(lines[6]), ansi.Truncate(ansi.Strip(all[len(all)-1]), 30, "…"); got != want {
			t.Fatalf("colour %v: End shows %q last, want %q", color, got, want)
		}
		if !strings.Contains(ansi.Strip(lines[7]), fmt.Sprintf("of %d", len(all))) {
			t.Fatalf("colour %v: footer %q", color, lines[7])
		}
	}
}

// TestDashboardQuitKeys: q, Esc and Ctrl-C quit; other keys do not.
func TestDashboardQuitKeys(t *testing.T) {
	d := newTestDashboard(false)
	for _, k := range []tea.KeyPressMsg{{Code: 'q', Text: "q"}, {Code: tea.KeyEscape}, {Code: 'c', Mod: tea.ModCtrl}} {
		_, cmd := d.Update(k)
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Fatalf("%s does not quit", k)
		}
	}
	if _, cmd := d.Update(tea.KeyPressMsg{Code: 'x', Text: "x"}); cmd != nil {
		t.Fatal("x quits")
	}
}

// TestStatusColourKeepsColumns: coloured status is the plain one with
// escapes added; the BACKUPS heading was pushed out of line by the
// escape bytes of the coloured RESULT cells below it.
func TestStatusColourKeepsColumns(t *testing.T) {
	var plain, color strings.Builder
	writeStatusText(&plain, dashboardView(), false)
	writeStatusText(&color, dashboardView(), true)
	if !strings.Contains(color.String(), "\x1b[") {
		t.Fatal("no colour")
	}
	if got := ansi.Strip(color.String()); got != plain.String() {
		t.Fatalf("coloured status without its escapes:\n%s\nplain:\n%s", got, plain.String())
	}
}
