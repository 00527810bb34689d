package index

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func initTestDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(dir, ChunkerParams{Min: 1, Avg: 2, Max: 4}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A user who could write the repository pointed <repo>/lock at a file of
// root's: the next command opened it O_CREAT|O_RDWR through the symlink,
// and holding the lock truncated and rewrote it.
func TestPlantedLockIsNotFollowed(t *testing.T) {
	const precious = "root's file, not a lock\n"
	cases := map[string]func(t *testing.T, lock, victim string){
		"symlink": func(t *testing.T, lock, victim string) {
			if err := os.Symlink(victim, lock); err != nil {
				t.Fatal(err)
			}
		},
		"dangling symlink": func(t *testing.T, lock, victim string) {
			os.Remove(victim)
			if err := os.Symlink(victim, lock); err != nil {
				t.Fatal(err)
			}
		},
		"hardlink": func(t *testing.T, lock, victim string) {
			if err := os.Link(victim, lock); err != nil {
				t.Fatal(err)
			}
		},
		"fifo": func(t *testing.T, lock, victim string) {
			if err := syscall.Mkfifo(lock, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, plant := range cases {
		t.Run(name, func(t *testing.T) {
			dir := initTestDir(t)
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte(precious), 0o644); err != nil {
				t.Fatal(err)
			}
			lock := filepath.Join(dir, lockName)
			os.Remove(lock)
			plant(t, lock, victim)
			for _, ro := range []bool{false, true} {
				done := make(chan error, 1)
				go func() {
					r, err := Open(dir, Options{ReadOnly: ro})
					if err == nil {
						r.Close()
					}
					done <- err
				}()
				var err error
				select {
				case err = <-done:
				case <-time.After(10 * time.Second):
					t.Fatalf("Open (read-only %v) hangs on a planted %s", ro, name)
				}
				if !errors.Is(err, ErrInsecurePermissions) || strings.Contains(err.Error(), "\n") {
					t.Errorf("Open (read-only %v) with a planted %s: %v, want one line and ErrInsecurePermissions", ro, name, err)
				}
			}
			if name == "dangling symlink" {
				if _, err := os.Lstat(victim); err == nil {
					t.Errorf("the symlink's target was created")
				}
				return
			}
			if b, _ := os.ReadFile(victim); string(b) != precious {
				t.Errorf("the file the planted lock pointed at now holds %q", b)
			}
		})
	}
}

// A repository other users can write, or that another user owns, is
// refused before anything in it is opened, unless the caller says
// otherwise.
func TestInsecureRepositoryRefused(t *testing.T) {
	cases := map[string]func(t *testing.T, dir string){
		"world-writable dir":   func(t *testing.T, dir string) { os.Chmod(dir, 0o777) },
		"group-writable index": func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, indexDir), 0o770) },
		"writable citadel.json": func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, configName), 0o666)
		},
		"writable packs":  func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, packsDir), 0o733) },
		"writable parent": func(t *testing.T, dir string) { os.Chmod(filepath.Dir(dir), 0o777) },
		"owned by another user": func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give the repository away")
			}
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			dir := initTestDir(t)
			spoil(t, dir)
			for _, ro := range []bool{false, true} {
				_, err := Open(dir, Options{ReadOnly: ro})
				if !errors.Is(err, ErrInsecurePermissions) || strings.Contains(err.Error(), "\n") ||
					!strings.Contains(err.Error(), "--insecure-repo-permissions") {
					t.Errorf("Open (read-only %v): %v, want a one-line refusal naming the flag", ro, err)
				}
			}
			if _, err := RebuildIndex(dir, Options{}); !errors.Is(err, ErrInsecurePermissions) {
				t.Errorf("RebuildIndex: %v, want ErrInsecurePermissions", err)
			}
			r, err := Open(dir, Options{InsecurePermissions: true})
			if err != nil {
				t.Fatalf("Open with InsecurePermissions: %v", err)
			}
			r.Close()
		})
	}
	t.Run("sticky parent is fine", func(t *testing.T) {
		dir := initTestDir(t)
		os.Chmod(filepath.Dir(dir), os.ModeSticky|0o777)
		r, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("a repository in a sticky directory (/tmp): %v", err)
		}
		r.Close()
	})
}
