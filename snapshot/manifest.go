package snapshot

import (
	"encoding/json"
	"fmt"
	"time"

	"citadelfs/index"
)

// Manifest is a snapshot's record: which tree each source had at a time.
// It is stored raw (uncompressed) as a blob in a pack of its own, so the
// index can be rebuilt from packs and forgetting a snapshot is deleting
// that pack.
type Manifest struct {
	Version int       `json:"version"`
	Time    time.Time `json:"time"`    // the time the snapshot represents (--time)
	Created time.Time `json:"created"` // wall-clock commit time
	Host    string    `json:"host"`
	Tags    []string  `json:"tags,omitempty"`
	Sources []Source  `json:"sources"`
	Program string    `json:"program"`
	// System is what the host was running; absent in manifests written
	// before it was recorded, and its fields empty where unknown.
	System *SystemInfo `json:"system,omitempty"`
	// CopiedFrom is the snapshot this one is a re-chunked copy of (copy
	// between repositories that chunk or key differently, recopy.go), in
	// the repository it was copied from; Origin the snapshot as first
	// taken, when that was further back (a copy of a copy). Both absent
	// in a snapshot taken here or copied as stored.
	CopiedFrom index.ID `json:"copied_from,omitzero"`
	Origin     index.ID `json:"origin,omitzero"`
}

// SystemInfo is the software stack of the host a snapshot was taken on,
// as the seed's backup-manifest.json recorded it. cmd probes it
// (internal/sysprobe) and passes it in Request.System.
type SystemInfo struct {
	Kernel       string `json:"kernel,omitempty"`        // uname release
	OSRelease    string `json:"os_release,omitempty"`    // /etc/os-release PRETTY_NAME
	NVIDIADriver string `json:"nvidia_driver,omitempty"` // e.g. 550.54.14
	CUDA         string `json:"cuda,omitempty"`          // highest CUDA version the driver supports, e.g. 12.4
}

// Source is one labelled source directory inside a snapshot.
type Source struct {
	Label string `json:"label"`
	Path  string `json:"path"` // the directory, or "/" for a source of paths
	// Paths are the files, directories and globs of a source of paths, as
	// given (made absolute); absent for a directory source.
	Paths    []string    `json:"paths,omitempty"`
	Tree     index.ID    `json:"tree"`
	Stats    SourceStats `json:"stats"`
	Warnings []string    `json:"warnings,omitempty"`
	Root     RootMeta    `json:"root"`
}

// SourceStats counts what one source's snapshot saw and stored.
type SourceStats struct {
	Files       int64 `json:"files"`
	Dirs        int64 `json:"dirs"`
	Others      int64 `json:"others"`       // symlinks, fifos, devices, sockets
	Bytes       int64 `json:"bytes"`        // apparent size of all files
	DataBytes   int64 `json:"data_bytes"`   // bytes of data in files (sparse holes excluded)
	ReadBytes   int64 `json:"read_bytes"`   // bytes actually read (not from the file cache)
	NewBytes    int64 `json:"new_bytes"`    // plain bytes of chunks not stored before
	StoredBytes int64 `json:"stored_bytes"` // their size after compression
	NewChunks   int64 `json:"new_chunks"`
	Unreadable  int64 `json:"unreadable"`         // files or dirs skipped with a warning
	Changed     int64 `json:"changed"`            // files that changed while being read
	Excluded    int64 `json:"excluded,omitempty"` // entries left out by excludes, cache tags, --one-file-system
	DurationMS  int64 `json:"duration_ms"`
}

// Snapshot is a committed snapshot with its id.
type Snapshot struct {
	ID index.ID
	Manifest
}

// Source returns the source labelled label.
func (s *Snapshot) Source(label string) (*Source, bool) {
	for i := range s.Sources {
		if s.Sources[i].Label == label {
			return &s.Sources[i], true
		}
	}
	return nil, false
}

// HasTag reports whether the snapshot carries tag.
func (s *Snapshot) HasTag(tag string) bool {
	for _, t := range s.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// DecodeManifest parses and checks a manifest.
func DecodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("snapshot: manifest: %v: %w", err, ErrCorrupt)
	}
	if m.Version != 1 || len(m.Sources) == 0 {
		return nil, fmt.Errorf("snapshot: manifest: version %d with %d sources: %w", m.Version, len(m.Sources), ErrCorrupt)
	}
	seen := map[string]bool{}
	for _, s := range m.Sources {
		// Restore writes each source to target/label, so a label like
		// "../x" would leave the target.
		if !validName(s.Label) || seen[s.Label] {
			return nil, fmt.Errorf("snapshot: manifest: bad or repeated source label %q: %w", s.Label, ErrCorrupt)
		}
		seen[s.Label] = true
		if s.Tree.IsZero() {
			return nil, fmt.Errorf("snapshot: manifest: source %q has no tree: %w", s.Label, ErrCorrupt)
		}
	}
	return &m, nil
}

func marshalManifest(m *Manifest) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("snapshot: manifest: %w", err)
	}
	return b, nil
}

// RootMeta is the metadata of a source's root directory itself.
type RootMeta struct {
	Mode  uint32 `json:"mode"`
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Mtime int64  `json:"mtime_ns"`
	// Nlink of the source directory (Node.Nlink); absent in manifests
	// written before it was kept.
	Nlink uint32 `json:"nlink,omitempty"`
	// Xattrs of the source directory itself (an ACL, a SELinux label);
	// absent in manifests written before they were kept.
	Xattrs []Xattr `json:"xattrs,omitempty"`
}

func rootMetaOf(n *Node) RootMeta {
	return RootMeta{Mode: n.Mode, UID: n.UID, GID: n.GID, Mtime: n.Mtime, Nlink: n.Nlink, Xattrs: n.Xattrs}
}

// RootNode is the source's root directory as a Node.
func (s *Source) RootNode() Node {
	return Node{Name: s.Label, Type: TypeDir, Mode: s.Root.Mode, UID: s.Root.UID, GID: s.Root.GID,
		Mtime: s.Root.Mtime, Nlink: s.Root.Nlink, Subtree: s.Tree, Xattrs: s.Root.Xattrs}
}
