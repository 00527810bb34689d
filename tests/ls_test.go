package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// snapshots --tag/--host/--source/--path, ls SNAP[:path] and find PATTERN
// through the binary, on a repository of three snapshots: the listings are
// what the trees hold, without a mount.
func TestSnapshotsFiltersLsFind(t *testing.T) {
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	configs := filepath.Join(dir, "configs")
	os.MkdirAll(filepath.Join(models, "llama"), 0o755)
	os.MkdirAll(configs, 0o755)
	os.WriteFile(filepath.Join(models, "llama", "w.safetensors"), []byte("weights"), 0o640)
	os.WriteFile(filepath.Join(models, "llama", "config.json"), []byte("{}"), 0o644)
	os.Symlink("llama", filepath.Join(models, "current"))
	os.WriteFile(filepath.Join(configs, "app.yaml"), []byte("a: 1\n"), 0o644)
	repo := initRepo(t, dir)
	snap := func(args ...string) string {
		return takeSnapshot(t, repo, args...).ID
	}
	a := snap("--source", "models="+models, "--tag", "nightly", "--tag", "keep")
	b := snap("--source", "configs="+configs, "--tag", "nightly")
	os.WriteFile(filepath.Join(models, "llama", "w2.safetensors"), []byte("more"), 0o640)
	c := snap("--source", "models="+models, "--tag", "adhoc")

	ids := func(args ...string) string {
		t.Helper()
		r := mustCitadel(t, append([]string{"--repo", repo, "snapshots", "--json"}, args...)...)
		var list []struct{ ID string }
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
			t.Fatalf("snapshots %v: %v\n%s", args, err, r)
		}
		var out []string
		for _, s := range list {
			out = append(out, s.ID[:8])
		}
		return strings.Join(out, " ")
	}
	host, _ := os.Hostname()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, a[:8] + " " + b[:8] + " " + c[:8]},
		{[]string{"--tag", "nightly"}, a[:8] + " " + b[:8]},
		{[]string{"--tag", "nightly,keep"}, a[:8]},
		{[]string{"--tag", "keep", "--tag", "adhoc"}, a[:8] + " " + c[:8]},
		{[]string{"--source", "configs"}, b[:8]},
		{[]string{"--source", "models", "--tag", "nightly"}, a[:8]},
		{[]string{"--path", models}, a[:8] + " " + c[:8]},
		{[]string{"--host", host, "--source", "configs"}, b[:8]},
		{[]string{"--host", "no-such-host"}, ""},
	} {
		if got := ids(tc.args...); got != tc.want {
			t.Errorf("snapshots %v: %q, want %q", tc.args, got, tc.want)
		}
	}
	if r := mustCitadel(t, "--repo", repo, "snapshots", "--tag", "adhoc"); !strings.Contains(r.stdout, c[:8]) || strings.Contains(r.stdout, a[:8]) || !strings.Contains(r.stdout, "1 snapshots") {
		t.Errorf("snapshots --tag adhoc:\n%s", r.stdout)
	}

	// ls: a snapshot's files as paths from /LABEL, everything below the path.
	if got := mustCitadel(t, "--repo", repo, "ls", a).stdout; got != "/models\n/models/current\n/models/llama\n/models/llama/config.json\n/models/llama/w.safetensors\n" {
		t.Errorf("ls %s:\n%s", a[:8], got)
	}
	if got := mustCitadel(t, "--repo", repo, "ls", "latest:models/llama").stdout; got != "/models/llama\n/models/llama/config.json\n/models/llama/w.safetensors\n/models/llama/w2.safetensors\n" {
		t.Errorf("ls latest:models/llama:\n%s", got)
	}
	if got := mustCitadel(t, "--repo", repo, "ls", "--recursive=false", "latest:models").stdout; got != "/models\n/models/current\n/models/llama\n" {
		t.Errorf("ls --recursive=false latest:models:\n%s", got)
	}
	long := mustCitadel(t, "--repo", repo, "ls", "-l", a+":models").stdout
	for _, want := range []string{"-rw-r-----", " 7 ", "/models/llama/w.safetensors\n", "Lrwxrwxrwx", "/models/current -> llama\n", "drwx"} {
		if !strings.Contains(long, want) {
			t.Errorf("ls -l has no %q:\n%s", want, long)
		}
	}
	r := mustCitadel(t, "--repo", repo, "ls", "--json", "latest:models/llama/w2.safetensors")
	var ents []struct {
		Path, Type, Mode string
		Size             int64
	}
	if err := json.Unmarshal([]byte(r.stdout), &ents); err != nil || len(ents) != 1 || ents[0].Path != "/models/llama/w2.safetensors" || ents[0].Type != "file" || ents[0].Size != 4 || ents[0].Mode != "-rw-r-----" {
		t.Errorf("ls --json: %v %+v\n%s", err, ents, r.stdout)
	}
	if r := citadel(t, "--repo", repo, "ls", "latest:models/nope"); r.code == 0 || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("ls of a missing path: %s", r)
	}

	// find: restic's output, snapshot by snapshot, name or path patterns.
	got := mustCitadel(t, "--repo", repo, "find", "*.safetensors").stdout
	want := "Found matching entries in snapshot " + a[:8] + " from "
	if !strings.HasPrefix(got, want) || strings.Count(got, "Found matching entries") != 2 || strings.Contains(got, b[:8]) ||
		strings.Count(got, "/models/llama/w.safetensors\n") != 2 || strings.Count(got, "/models/llama/w2.safetensors\n") != 1 {
		t.Errorf("find *.safetensors:\n%s", got)
	}
	if got := mustCitadel(t, "--repo", repo, "find", "--snapshot", b, "*.yaml", "*.json").stdout; !strings.Contains(got, "/configs/app.yaml\n") || strings.Contains(got, "config.json") {
		t.Errorf("find --snapshot %s:\n%s", b[:8], got)
	}
	if got := mustCitadel(t, "--repo", repo, "find", "/models/llama/w*").stdout; strings.Count(got, "/models/llama/w") != 3 {
		t.Errorf("find with a path pattern:\n%s", got)
	}
	if got := mustCitadel(t, "--repo", repo, "find", "nothing").stdout; got != "" {
		t.Errorf("find with no match printed %q", got)
	}
	if r := citadel(t, "--repo", repo, "find", "[bad"); r.code != 2 {
		t.Errorf("find [bad: %s", r)
	}
	if r := citadel(t, "--repo", repo, "find"); r.code != 2 {
		t.Errorf("find without a pattern: %s", r)
	}
}
