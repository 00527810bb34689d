package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"citadelfs/index"
)

// The command an env runs is the one parseFlags was given (env.cmd), not
// one recovered from its FlagSet's display name: the lock names it, and
// its readsOnly decides how a repository that cannot be written opens.
func TestOpenRepoKnowsItsCommand(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	if code, _, stderr := runCLI(t, "init", "--encryption", "none", "--repo", repo); code != exitOK {
		t.Fatalf("init: %s", stderr)
	}
	ctx := context.Background()
	env := &cmdEnv{stdout: io.Discard, stderr: io.Discard, global: &globalFlags{}}
	if _, ok := parseFlags(commands["check"], env, []string{"--repo", repo}); !ok {
		t.Fatal("parseFlags")
	}
	if env.cmd != commands["check"] || !env.cmd.readsOnly {
		t.Fatalf("env.cmd = %+v", env.cmd)
	}
	_, release, err := openRepo(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	other := &cmdEnv{stdout: io.Discard, stderr: io.Discard, global: &globalFlags{repo: repo}}
	_, _, err = openRepo(ctx, other)
	if !errors.Is(err, index.ErrLocked) || !strings.Contains(err.Error(), "(citadelfs check)") {
		t.Fatalf("second open: %v; want it locked by citadelfs check", err)
	}
}
