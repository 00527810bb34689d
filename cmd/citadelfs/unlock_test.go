package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"citadelfs/index"
)

// encryptedRepo makes an encrypted local repository unlocked by the
// passphrase in the returned file; its cache goes under the test's state
// dir.
func encryptedRepo(t *testing.T) (dir, repo, pw string) {
	t.Helper()
	dir = t.TempDir()
	t.Setenv(stateDirEnv, filepath.Join(dir, "state"))
	t.Setenv(passwordFileEnv, "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	repo = filepath.Join(dir, "repo")
	pw = filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret passphrase\n"), 0o600)
	if code, _, stderr := runCLI(t, "init", "--repo", repo, "--password-file", pw, "--config", filepath.Join(dir, "none.yaml")); code != exitOK {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	return dir, repo, pw
}

// Each way of giving the passphrase unlocks, in the documented order:
// $CITADELFS_PASSWORD_FILE, the systemd credential, the config's
// password_file; none (and no terminal: the test's stdin) is exit 2
// naming them, a wrong one exit 15.
func TestUnlockSources(t *testing.T) {
	dir, repo, pw := encryptedRepo(t)
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("nope"), 0o600)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("repo: "+repo+"\npassword_file: "+pw+"\n"), 0o600)
	noCfg := filepath.Join(dir, "none.yaml")

	code, _, stderr := runCLI(t, "snapshots", "--repo", repo, "--config", noCfg)
	if code != exitUsage || !strings.Contains(stderr, "--password-file") || !strings.Contains(stderr, credentialName) || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("no passphrase: exit %d: %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "snapshots", "--config", cfg); code != exitOK {
		t.Fatalf("password_file in the config: exit %d: %s", code, stderr)
	}
	creds := filepath.Join(dir, "creds")
	os.Mkdir(creds, 0o700)
	os.WriteFile(filepath.Join(creds, credentialName), []byte("s3cret passphrase"), 0o600)
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	if code, _, stderr := runCLI(t, "snapshots", "--repo", repo, "--config", noCfg); code != exitOK {
		t.Fatalf("systemd credential: exit %d: %s", code, stderr)
	}
	// $CITADELFS_PASSWORD_FILE comes before the credential.
	t.Setenv(passwordFileEnv, wrong)
	if code, _, stderr := runCLI(t, "snapshots", "--repo", repo, "--config", noCfg); code != exitWrongKey || !strings.Contains(stderr, "$"+passwordFileEnv) {
		t.Fatalf("wrong $%s: exit %d: %s", passwordFileEnv, code, stderr)
	}
	// --password-file comes before everything.
	if code, _, stderr := runCLI(t, "snapshots", "--repo", repo, "--config", noCfg, "--password-file", pw); code != exitOK {
		t.Fatalf("--password-file: exit %d: %s", code, stderr)
	}
	if code, _, _ := runCLI(t, "snapshots", "--repo", repo, "--config", noCfg, "--password-file", pw, "--key-file", pw); code != exitUsage {
		t.Fatalf("both --password-file and --key-file: exit %d", code)
	}
	if exitCode(errNoSecret("x")) != exitUsage {
		t.Error("errNoSecret is not a usage error")
	}
}

// The generated units of an encrypted repository load its passphrase as
// a credential (the unit files name the file, never its contents), and
// the oneshots may write its cache beside the repository.
func TestSystemdPasswordCredential(t *testing.T) {
	dir, repo, pw := encryptedRepo(t)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("repo: "+repo+"\npassword_file: "+pw+"\nsources:\n  models: /opt/models\n"), 0o600)
	_, units := installUnitsFor(t, cfg, "/usr/bin/citadelfs")
	n := 0
	for name, u := range units {
		if strings.Contains(u, "s3cret") {
			t.Errorf("%s holds the passphrase", name)
		}
		if !strings.HasSuffix(name, ".service") {
			continue
		}
		n++
		if !strings.Contains(u, "\nLoadCredential=citadelfs-password:"+pw+"\n") {
			t.Errorf("%s has no LoadCredential of %s:\n%s", name, pw, u)
		}
		if name != "citadelfs-mount.service" && !strings.Contains(u, "CacheDirectory=citadelfs\n") {
			t.Errorf("%s cannot write the cache of an encrypted repository:\n%s", name, u)
		}
	}
	if n < 4 {
		t.Fatalf("%d services", n)
	}
	// In the clear: no credential.
	clearCfg := filepath.Join(dir, "clear.yaml")
	os.WriteFile(clearCfg, []byte("repo: /srv/repo\nsources:\n  models: /opt/models\n"), 0o600)
	_, units = installUnitsFor(t, clearCfg, "/usr/bin/citadelfs")
	for name, u := range units {
		if strings.Contains(u, "LoadCredential") || strings.Contains(u, "CacheDirectory") {
			t.Errorf("%s of a repository in the clear: %s", name, u)
		}
	}
}

// A command that opens the repository again (status --watch redraws)
// unlocks with the secret it was given once: a prompt is not asked again.
func TestUnlockSecretAskedOnce(t *testing.T) {
	_, repo, pw := encryptedRepo(t)
	env := &cmdEnv{stdout: os.Stdout, stderr: os.Stderr, global: &globalFlags{passwordFile: pw, configPath: "/nonexistent.yaml"}}
	open := func() error {
		s, err := env.repoStore(repo)
		if err != nil {
			return err
		}
		defer s.Close()
		cfg, err := index.ReadStoreConfig(s, repo)
		if err != nil {
			return err
		}
		_, err = env.unlockStore(s, repo, cfg)
		return err
	}
	if err := open(); err != nil {
		t.Fatal(err)
	}
	os.Remove(pw) // the source is gone: only the remembered secret can open it
	if err := open(); err != nil {
		t.Fatalf("second open: %v", err)
	}
}
