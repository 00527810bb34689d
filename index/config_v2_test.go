package index

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A new repository is format version 2 and names its encryption; a
// version 1 file (no encryption field) still parses, and the encryption
// field must fit the version: a version 2 file without one would
// otherwise be opened in the clear.
func TestConfigVersion2(t *testing.T) {
	dir, valid := initConfig(t)
	cfg, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 2 || cfg.Encryption != EncryptionNone || cfg.Encrypted() || cfg.StoreLayout() {
		t.Fatalf("new local repository: %+v, want version 2, encryption none", cfg)
	}
	var m map[string]any
	json.Unmarshal(valid, &m)
	delete(m, "checksum")
	for _, c := range []struct {
		version    int
		encryption any // nil: absent
		want       error
	}{
		{1, nil, nil},
		{2, "none", nil},
		{2, "aes-256-gcm", nil},
		{1, "none", ErrCorrupt},
		{2, nil, ErrCorrupt},
		{2, "rot13", ErrCorrupt},
		{3, "none", ErrVersion},
		{0, nil, ErrVersion},
	} {
		m["version"] = c.version
		delete(m, "encryption")
		if c.encryption != nil {
			m["encryption"] = c.encryption
		}
		data, _ := json.Marshal(m)
		got, err := parseConfig(dir, data)
		switch {
		case c.want == nil && err != nil:
			t.Errorf("version %d encryption %v: %v", c.version, c.encryption, err)
		case c.want == nil && got.Version != c.version:
			t.Errorf("version %d: parsed as %d", c.version, got.Version)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("version %d encryption %v: %v, want %v", c.version, c.encryption, err, c.want)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("not one line: %q", err)
		}
	}
}

// InitStoreWith writes a version 2 citadel.json; an encrypted one keeps
// no chunker seed (the gear table comes from the key), is the store
// layout, and Open (the directory layout) refuses it rather than take
// its index/ of index objects for a Pebble database.
func TestInitStoreWithEncryption(t *testing.T) {
	dir := t.TempDir()
	s := NewLocalStore(dir, 0)
	cp := ChunkerParams{Min: 64 << 10, Avg: 128 << 10, Max: 512 << 10, Seed: 7}
	cfg, err := InitStoreWith(s, dir, InitOptions{Chunker: cp, Encryption: EncryptionAESGCM, Now: time.Unix(1e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadStoreConfig(s, dir)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *cfg || got.Version != 2 || !got.Encrypted() || !got.StoreLayout() || got.Chunker.Seed != 0 || got.Chunker.Avg != cp.Avg {
		t.Fatalf("encrypted config: %+v (returned %+v)", got, cfg)
	}
	if _, err := InitStoreWith(s, dir, InitOptions{Chunker: cp}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second init: %v", err)
	}
	if _, err := Open(dir, Options{Keys: mustKeys(t)}); err == nil || !strings.Contains(err.Error(), "store layout") {
		t.Fatalf("Open of an encrypted repository: %v, want a refusal naming the store layout", err)
	}
	if _, err := InitStoreWith(NewLocalStore(t.TempDir(), 0), "x", InitOptions{Chunker: cp, Encryption: "rot13"}); err == nil {
		t.Fatal("unknown encryption accepted")
	}
	clear, err := InitStoreWith(NewLocalStore(t.TempDir(), 0), "x", InitOptions{Chunker: cp})
	if err != nil || clear.Encryption != EncryptionNone || clear.Chunker.Seed != 7 {
		t.Fatalf("clear store init: %+v, %v", clear, err)
	}
	if _, err := os.Stat(filepath.Join(dir, configName)); err != nil {
		t.Fatal(err)
	}
}

func mustKeys(t *testing.T) *Keys {
	t.Helper()
	m, err := NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := KeysFromMaster(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
