package index

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FormatVersion is the repository format this binary reads and writes.
const FormatVersion = 1

// Sentinel errors owned by the index package; check with errors.Is.
var (
	// ErrNoRepository: the path holds no citadelfs repository.
	ErrNoRepository = errors.New("no repository")
	// ErrVersion: the repository's format version is not supported.
	ErrVersion = errors.New("unsupported repository format version")
	// ErrLocked: another process holds the repository.
	ErrLocked = errors.New("repository is locked")
	// ErrCorrupt: bytes read from disk fail their checks.
	ErrCorrupt = errors.New("corrupt data")
)

// Config is citadel.json: what a reader must know before touching packs.
type Config struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Hash names the chunk hash ("blake3").
	Hash string `json:"hash"`
	// Chunker parameters; changing them breaks dedup with older snapshots,
	// so they are fixed at init.
	Chunker ChunkerParams `json:"chunker"`
}

// ChunkerParams are the content-defined chunking sizes in bytes.
type ChunkerParams struct {
	Min  int    `json:"min"`
	Avg  int    `json:"avg"`
	Max  int    `json:"max"`
	Seed uint64 `json:"seed"`
}

const (
	configName = "citadel.json"
	packsDir   = "packs"
	indexDir   = "index"
	lockName   = "lock"
)

// Init creates a new repository at dir. dir may exist but must be empty.
func Init(dir string, cp ChunkerParams, now time.Time) (*Config, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("index: init %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("index: init %s: %w", dir, err)
	}
	if len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(dir, configName)); err == nil {
			return nil, fmt.Errorf("index: init %s: a repository already exists there", dir)
		}
		return nil, fmt.Errorf("index: init %s: directory is not empty", dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("index: init %s: %w", dir, err)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("index: init: %w", err)
	}
	cfg := &Config{Version: FormatVersion, ID: hex.EncodeToString(id[:]), Created: now.UTC(), Hash: "blake3", Chunker: cp}
	for _, sub := range []string{packsDir, indexDir} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("index: init: %w", err)
		}
	}
	kv, err := OpenKV(filepath.Join(dir, indexDir), KVOptions{})
	if err != nil {
		return nil, err
	}
	if err := kv.Close(); err != nil {
		return nil, err
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	// citadel.json goes last: a directory without it is not a repository,
	// so an init killed halfway is simply retried.
	if err := writeFileSync(filepath.Join(dir, configName), append(data, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("index: init: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("index: init: %w", err)
	}
	return cfg, nil
}

// ReadConfig reads and validates citadel.json.
func ReadConfig(dir string) (*Config, error) {
	data, err := os.ReadFile(filepath.Join(dir, configName))
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("%s is not a directory: %w", dir, ErrNoRepository)
	}
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return nil, fmt.Errorf("%s does not exist: %w (create one with 'citadelfs init --repo %s')", dir, ErrNoRepository, dir)
		}
		return nil, fmt.Errorf("%s has no %s: %w (create one with 'citadelfs init --repo %s')", dir, configName, ErrNoRepository, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("index: read %s: %w", configName, err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("index: %s/%s is not valid JSON (%v): %w", dir, configName, err, ErrCorrupt)
	}
	if cfg.Version != FormatVersion {
		return nil, fmt.Errorf("%s: format version %d, this binary reads version %d: %w", dir, cfg.Version, FormatVersion, ErrVersion)
	}
	if cfg.Hash != "blake3" || cfg.Chunker.Min <= 0 || cfg.Chunker.Avg < cfg.Chunker.Min || cfg.Chunker.Max < cfg.Chunker.Avg {
		return nil, fmt.Errorf("index: %s/%s has invalid parameters: %w", dir, configName, ErrCorrupt)
	}
	return &cfg, nil
}

func writeFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
