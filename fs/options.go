package fs

import (
	"log/slog"
	"time"
)

// Options configure a mount. The zero value of every field but Tree means
// the default documented next to it; withDefaults fills them in.
type Options struct {
	// Tree serves the snapshots. Required.
	Tree Tree
	// Status serves the files under status/. Default nil: no status/
	// folder. Use MergeStatus to combine several sources.
	Status StatusSource

	// Location is the time zone that names day folders (<YYYY-MM-DD>/)
	// and snapshot folders (snapshots/<YYYY-MM-DDTHH:MM:SS>/). Default
	// time.Local: an operator thinks of "yesterday's configs" in local time.
	Location *time.Location
	// Host is the mounting host's name: the top-level day folders and
	// latest/ show its snapshots (and those that record no host), while
	// hosts/<host>/ shows every host's. Default "": every snapshot at the
	// top level, as if all were this host's.
	Host string
	// Logger receives one record per operation that failed with EIO.
	// Default slog.Default().
	Logger *slog.Logger
	// OnError, if set, is called (after logging) with the mount-relative
	// path and the error for every operation answered with EIO, e.g. a
	// chunk that failed its hash check; the daemon raises an alert from it.
	// It must not block. Default nil.
	OnError func(path string, err error)

	// SnapshotTimeout is how long the kernel may cache entries, negative
	// entries and attributes inside a snapshot. Snapshots never change, so
	// it is long. Default 1h.
	SnapshotTimeout time.Duration
	// TopAttrTimeout is how long the kernel may cache the names and
	// attributes of the virtual folders (root, day folders, latest/,
	// snapshots/, tags/). A change of snapshots invalidates the names that
	// changed at once (Server.Refresh), so this only bounds how stale they
	// can get if that fails. Default 1s.
	TopAttrTimeout time.Duration

	// MaxRead is the largest read request the kernel sends and its
	// readahead window. Default 1 MiB (the kernel's default is 128 KiB,
	// which costs eight round trips per chunk).
	MaxRead int
	// AllowOther lets users other than the one that mounted use the
	// mount (FUSE allow_other). Default false; default_permissions still
	// applies each file's own owner and mode.
	AllowOther bool
	// FsName is shown as the source in /proc/mounts and df. Default
	// "citadelfs".
	FsName string
	// Debug logs every FUSE request (go-fuse's debug output). Default
	// false.
	Debug bool
}

func (o Options) withDefaults() Options {
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SnapshotTimeout == 0 {
		o.SnapshotTimeout = time.Hour
	}
	if o.TopAttrTimeout == 0 {
		o.TopAttrTimeout = time.Second
	}
	if o.MaxRead <= 0 {
		o.MaxRead = 1 << 20
	}
	if o.FsName == "" {
		o.FsName = "citadelfs"
	}
	return o
}
