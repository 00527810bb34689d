package main

// `status --watch` on a terminal is a full-screen dashboard, as the seed's
// curses one was: the alternate screen, fitted to the terminal's height and
// width (a resize, SIGWINCH, refits it), q, Esc or Ctrl-C to quit with the
// terminal restored, colour for severity unless NO_COLOR is set, a redraw
// every --interval.
//
// Bubble Tea v2 (charm.land/bubbletea/v2 v2.1.1) runs it: it owns raw
// mode, the alternate screen, resize events and restoring the terminal on
// every way out, so none of that is hand-rolled here. Not v1
// (github.com/charmbracelet/bubbletea v1.3.10): its x/cellbuf does not
// build against the x/ansi v0.11 that minio-go already brings into this
// module, while v2 shares that x/ansi and its ultraviolet renderer with
// minio-go's own charm.land modules. No lipgloss: the content is status' own
// text (statusSections, the one renderer of `status`), already coloured by
// the same painter, so the dashboard only orders its sections by urgency
// (alerts, backups, GPUs, model services, system, systemd units), cuts
// each line to the width (ANSI-aware) and the lines to the height, and
// says in its last line how many lines are below (arrows, j/k, PgUp/PgDn
// scroll).
//
// Where stdout is no terminal (golang.org/x/term), --watch prints plain
// frames one after another, as before: a pipe or a log gets the text of
// `status` every --interval and no escape codes.
//
// While a mount daemon owns the repository, plain `status` is handed to it;
// the dashboard instead stays in this process, which owns the terminal and
// its keys, and asks the daemon for `status --json` at each redraw; a
// daemon that stops is followed by a monitor of this process.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"golang.org/x/term"

	"citadelfs/internal/daemon"
)

// wantsDashboard says whether this status invocation is the dashboard:
// --watch, no --json, stdout a terminal.
func wantsDashboard(env *cmdEnv) bool {
	if env.daemon != nil || env.global.json || env.flags == nil {
		return false
	}
	watch, _ := env.flags.GetBool("watch")
	f, ok := env.stdout.(*os.File)
	return watch && ok && term.IsTerminal(int(f.Fd())) && !strings.EqualFold(os.Getenv("TERM"), "dumb")
}

// runsHere says whether a delegable command must run in this process even
// where a mount daemon owns the repository: the dashboard needs this
// terminal.
func runsHere(c *command, env *cmdEnv) bool {
	return c.name == "status" && wantsDashboard(env)
}

// statusSource gives one statusView per redraw.
type statusSource func(ctx context.Context) (statusView, error)

// dashboardSource gives the dashboard's views: the mount daemon's live
// state while a daemon owns the repository, else a monitor of this
// process's own, opened when first needed (a daemon that stops while the
// dashboard runs is followed by it). release closes that monitor, after
// a sample in progress.
func dashboardSource(env *cmdEnv) (src statusSource, release func()) {
	var mu sync.Mutex
	fromDaemon := daemonStatusCall(env)
	var cm *cliMonitor
	src = func(ctx context.Context) (statusView, error) {
		mu.Lock()
		defer mu.Unlock()
		if cm == nil && fromDaemon != nil {
			v, err := fromDaemon(ctx)
			if !errors.Is(err, daemon.ErrNoDaemon) {
				return v, err
			}
			fromDaemon = nil
		}
		if cm == nil {
			c, err := newCLIMonitor(ctx, env, cliMonitorMode{})
			if err != nil {
				return statusView{}, err
			}
			cm = c
		}
		v, err := statusSample(ctx, cm.m, false)
		if err == nil && v.HistoryErr == "" {
			v.HistoryErr = cm.historyErr
		}
		return v, err
	}
	release = func() {
		mu.Lock()
		defer mu.Unlock()
		if cm != nil {
			cm.close()
			cm = nil
		}
	}
	return src, release
}

// daemonStatusCall asks the mount daemon of the repository for `status
// --json`: daemon.ErrNoDaemon when none serves it. nil where no daemon
// can (no repository named, or no cache dir of an s3:// one to look in).
func daemonStatusCall(env *cmdEnv) statusSource {
	repo, err := env.repoPath()
	if err != nil {
		return nil
	}
	sockDir, ok := env.daemonDir(repo)
	if !ok {
		return nil
	}
	if !isRemote(repo) {
		repo = sockDir
	}
	cwd, _ := os.Getwd()
	args := []string{"status", "--json", "--config=" + env.absPath(env.global.configPath), "--repo=" + repo}
	return func(ctx context.Context) (statusView, error) {
		var out, errOut bytes.Buffer
		code, err := daemon.Call(ctx, sockDir, daemon.Request{Args: args, Cwd: cwd}, &out, &errOut, interruptGrace)
		if err != nil {
			return statusView{}, err
		}
		var doc statusJSON
		if jerr := json.Unmarshal(out.Bytes(), &doc); jerr != nil {
			msg := strings.TrimSpace(errOut.String())
			if msg == "" {
				msg = fmt.Sprintf("exit %d, no status document: %v", code, jerr)
			}
			return statusView{}, errors.New(msg)
		}
		return statusView{Sample: doc.Sample, Alerts: doc.Alerts, Health: doc.Health, Recent: doc.Recent}, nil
	}
}

// runDashboard runs the dashboard until q, Ctrl-C or ctx ends; all of them
// are exit 0 (stopping is how a watch ends).
func runDashboard(ctx context.Context, env *cmdEnv, interval time.Duration) error {
	src, release := dashboardSource(env)
	defer release()
	// A sample still being taken when the dashboard quits stops.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The first sample before the screen changes: a configuration that
	// cannot be used is one line and its exit code, as for plain status.
	m := &dashboard{src: src, ctx: ctx, interval: interval, color: os.Getenv("NO_COLOR") == ""}
	first := m.fetch().(sampleMsg)
	if first.err != nil && exitCode(first.err) != exitFatal {
		return first.err
	}
	m.Update(first)
	out := env.stdout.(*os.File)
	// Keys come from stdin, or /dev/tty where stdin is no terminal.
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithOutput(out),
		// SIGINT and SIGTERM stay with signals.go, which cancels ctx.
		tea.WithoutSignalHandler())
	// A second signal exits at once (signals.go): leave the alternate
	// screen and raw mode first.
	defer onHardExit(func() { p.Kill(); p.Wait() })()
	_, err := p.Run()
	if err != nil && !(errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil) {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}

// dashboard is the Bubble Tea model of `status --watch`.
type dashboard struct {
	src      statusSource
	ctx      context.Context
	interval time.Duration
	color    bool

	width, height int
	view          statusView
	fetched       bool
	err           error
	at            time.Time
	// offset is the first shown line when the content is taller than
	// the terminal.
	offset int
}

type sampleMsg struct {
	v   statusView
	err error
	at  time.Time
}

type tickMsg struct{}

func (d *dashboard) fetch() tea.Msg {
	v, err := d.src(d.ctx)
	return sampleMsg{v: v, err: err, at: time.Now()}
}

// Init waits out the interval after the first sample (runDashboard).
func (d *dashboard) Init() tea.Cmd { return d.tick() }

func (d *dashboard) tick() tea.Cmd {
	return tea.Tick(d.interval, func(time.Time) tea.Msg { return tickMsg{} })
}

func (d *dashboard) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		d.width, d.height = msg.Width, msg.Height
	case tea.KeyPressMsg:
		switch msg.String() {
		case "q", "Q", "esc", "ctrl+c":
			return d, tea.Quit
		case "down", "j":
			d.offset++
		case "up", "k":
			d.offset--
		case "pgdown", "space", "f":
			d.offset += d.bodyHeight()
		case "pgup", "b":
			d.offset -= d.bodyHeight()
		case "home", "g":
			d.offset = 0
		case "end", "G":
			d.offset = 1 << 30
		}
	case sampleMsg:
		d.fetched, d.at = true, msg.at
		if d.err = msg.err; msg.err == nil {
			d.view = msg.v
		}
		return d, d.tick()
	case tickMsg:
		return d, d.fetch
	}
	return d, nil
}

// bodyHeight is the lines left for content above the footer.
func (d *dashboard) bodyHeight() int { return max(d.height-1, 1) }

func (d *dashboard) View() tea.View {
	var s string
	if d.width > 0 && d.height > 0 {
		lines, footer := d.frame()
		s = strings.Join(lines, "\n") + "\n" + footer
	}
	v := tea.NewView(s)
	v.AltScreen = true
	return v
}

// frame is the dashboard's lines cut to the terminal, and its footer.
func (d *dashboard) frame() (lines []string, footer string) {
	p := painter(d.color)
	var all []string
	switch {
	case !d.fetched:
		all = []string{"citadelfs status  collecting a sample..."}
	default:
		if d.view.Health != "" || d.view.Sample != nil {
			all = dashboardLines(d.view, d.color)
		}
		if d.err != nil {
			all = append([]string{p.c(ansiRed, "status: "+d.err.Error())}, all...)
		}
	}
	h := d.bodyHeight()
	d.offset = min(max(d.offset, 0), max(len(all)-h, 0))
	end := min(d.offset+h, len(all))
	for _, l := range all[d.offset:end] {
		lines = append(lines, ansi.Truncate(l, d.width, "…"))
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	// Most needed first: a narrow terminal cuts the end.
	foot := "q quit"
	if len(all) > h {
		foot += fmt.Sprintf("  lines %d-%d of %d ↑↓ PgUp PgDn", d.offset+1, end, len(all))
	}
	foot += fmt.Sprintf("  every %s", d.interval)
	if !d.at.IsZero() {
		foot += "  updated " + d.at.Format("15:04:05")
	}
	return lines, p.c(ansiDim, ansi.Truncate(foot, d.width, "…"))
}

// dashboardOrder is the sections' order on the dashboard: what needs a
// person first, so a short terminal still shows it.
var dashboardOrder = []string{secAlerts, secBackups, secGPUs, secModels, secSystem, secUnits}

// dashboardLines is status' text for the dashboard: the header, then the
// sections in dashboardOrder.
func dashboardLines(v statusView, color bool) []string {
	header, sections := statusSections(v, color)
	var b strings.Builder
	b.WriteString(header)
	rank := func(title string) int {
		for i, t := range dashboardOrder {
			if t == title {
				return i
			}
		}
		return len(dashboardOrder) // a section added later goes last
	}
	sort.SliceStable(sections, func(i, j int) bool { return rank(sections[i].title) < rank(sections[j].title) })
	for _, sec := range sections {
		fmt.Fprintf(&b, "\n%s\n%s", sec.heading, sec.body)
	}
	// A tab would move the cursor past what Truncate counted.
	text := strings.ReplaceAll(strings.TrimRight(b.String(), "\n"), "\t", " ")
	return strings.Split(text, "\n")
}
