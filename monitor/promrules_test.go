package monitor

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"citadelfs/index"
)

const rulesFile = "../docs/prometheus-rules.yml"

// fullSample is richSample with every optional part filled, so that its
// exposition has every series docs/prometheus-rules.yml may use.
func fullSample(now time.Time) *Sample {
	s := richSample(now)
	g := &s.GPUs.Devices[0]
	pending, failed, corr, unc := true, false, 1, 0
	g.LastXIDTime, g.RetiredPagesPending, g.RowRemapPending, g.RowRemapFailed = now, &pending, &pending, &failed
	g.RemappedRowsCorrectable, g.RemappedRowsUncorrectable = &corr, &unc
	b := s.Backup
	b.Integrity = &IntegrityStatus{CorruptReads: 1, CorruptFiles: 1, LastTime: now}
	b.LastCheck = &CheckStatus{Time: now, Result: index.CheckOK}
	b.TestRestore = &TestRestoreStatus{Last: &TestRestoreState{Time: now, Result: index.CheckOK, Files: 3}}
	b.Created = now.Add(-time.Hour)
	b.Maintenance = []MaintenanceState{{Op: "prune", Time: now, Result: index.MaintenanceOK}}
	return s
}

// docs/prometheus-rules.yml mirrors the built-in rules over the exported
// series: promtool check rules has nothing to say, promtool test rules
// passes (monitor/testdata), every built-in rule has an alert of its name,
// and every citadelfs_* series the rules read is one the monitor exports
// (a renamed series fails here, not silently in a site's Prometheus).
func TestPrometheusRules(t *testing.T) {
	doc, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var d Thresholds
	for _, p := range (&Thresholds{}).pairs(&d) {
		if !strings.Contains(string(doc), "- alert: "+p.name+"\n") {
			t.Errorf("built-in rule %s has no alert in %s", p.name, rulesFile)
		}
	}
	s := fullSample(time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC))
	n := newNotifier(AlertingConfig{Alertmanager: []string{"http://127.0.0.1:9093"}}, nil, quietLogger(), 0)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(sampleCollector{func() (*Sample, []Alert) { return s, nil }, func() *notifier { return n }})
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	text, err := gatherText(reg)
	if err != nil {
		t.Fatal(err)
	}
	fams := parseProm(t, text)
	used := map[string]bool{}
	for _, name := range regexp.MustCompile(`citadelfs_[a-z0-9_]+`).FindAllString(string(doc), -1) {
		used[name] = true
	}
	for name := range used {
		if fams[name] == nil {
			t.Errorf("%s reads %s, which the monitor does not export", rulesFile, name)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus; .ci/run does): rules not checked")
	}
	out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") || strings.Contains(string(out), "FAILED") || strings.Contains(string(out), "lint") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool, "test", "rules", "prometheus-rules.test.yml", "prometheus-rules-stale.test.yml")
	cmd.Dir = "testdata"
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
