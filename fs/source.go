package fs

import (
	"context"
	"time"
)

// The interfaces in this file are everything fs consumes. cmd/citadelfs
// wires them to the snapshot package (for trees and file contents) and to the
// monitor (for status files); fs imports neither, nor Pebble.

// Snapshot is one committed snapshot as the mount shows it.
type Snapshot struct {
	// ID is the snapshot's hex id (unique, stable).
	ID string
	// Time is the time the snapshot represents (the --time it was taken with).
	Time time.Time
	// Host is the host the snapshot was taken on, as it recorded it
	// ("" when it recorded none). The mount shows every host's under
	// hosts/<host>/, and only Options.Host's (and those with none) in the
	// top-level day folders and latest/.
	Host string
	// Tags such as "daily", "weekly".
	Tags []string
	// Sources holds one root directory per source label ("models", ...).
	Sources []SourceRoot
}

// SourceRoot is one source's root directory inside a snapshot.
type SourceRoot struct {
	Label string
	Root  Node
}

// Node is one file-system object inside a snapshot. All fields are final:
// fs serves them as they are.
type Node struct {
	// Name is the entry name; any bytes except '/' and NUL.
	Name string
	// Mode is the full st_mode: file type bits (syscall.S_IFREG, S_IFDIR,
	// S_IFLNK, S_IFIFO, ...) plus permission, setuid/setgid/sticky bits.
	Mode uint32
	UID  uint32
	GID  uint32
	// Size is the apparent size in bytes (st_size); for symlinks the
	// target's length.
	Size int64
	// Mtime, Atime, Ctime as recorded (nanosecond precision).
	Mtime, Atime, Ctime time.Time
	// Nlink is the link count as recorded (st_nlink of the source, for
	// directories too); fs serves it unchanged, 0 (not recorded) as 1.
	Nlink uint32
	// Ino is a stable inode number: the same across lookups, listings and
	// remounts for the same snapshot object; hardlinked files share it.
	// It needs to be unique only within one SourceRoot of one snapshot:
	// fs mixes in the snapshot ID and label (and, for directories, the
	// folder the source root is shown under), so the same number in two
	// snapshots never aliases in the kernel's page cache. 0 means unknown:
	// fs then derives a number from the parent and name (hardlinks are then
	// not shared).
	Ino uint64
	// Rdev for device nodes.
	Rdev uint32
	// Target is a symlink's target.
	Target string
	// Xattrs are the extended attributes, in name order.
	Xattrs []Xattr
	// Blocks is the number of 512-byte blocks the file occupies (holes
	// excluded), reported in st_blocks so sparse files look sparse.
	Blocks int64
	// Handle is opaque to fs: the Tree implementation uses it to find the
	// node's children or contents.
	Handle any
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Tree reads snapshots. Every method may be called from many goroutines at
// once and must honour ctx.
//
// Errors: an object that does not exist (e.g. a snapshot removed by prune
// while mounted) is reported with an error wrapping io/fs.ErrNotExist (fs
// answers ENOENT); a cancelled ctx with ctx.Err() (EINTR); anything else is
// logged once with the mount path and answered with EIO.
type Tree interface {
	// Snapshots lists every committed snapshot, oldest first, in the one
	// order the caller's engine keeps (citadelfs: snapshot.Compare). fs
	// decides nothing about it: the last snapshot with a label is what
	// latest/<label> shows, the last of a local day with a label is the
	// day folder's, and among the snapshots of one second the first keeps
	// the bare folder name under snapshots/ (so the order within a second
	// must be commit order, or names move when snapshots are taken).
	// It is called often (each lookup in a top-level folder may call it),
	// so an implementation keeps it cheap; Generation lets fs skip
	// rebuilding its view when nothing changed.
	Snapshots(ctx context.Context) ([]Snapshot, error)
	// Generation changes whenever the set of snapshots changes.
	Generation() uint64
	// ReadDir lists a directory node's children in name order (byte-wise,
	// as sort.Strings orders them; fs binary-searches the list for lookups
	// and sorts a copy if it is not ordered). fs caches the list for as
	// long as the kernel keeps the directory, so ReadDir is called about
	// once per directory per mount.
	ReadDir(ctx context.Context, dir Node) ([]Node, error)
	// Open returns a reader for a regular file node. It is called once per
	// open(2) of the file through the mount, so it should not read contents.
	Open(ctx context.Context, file Node) (File, error)
}

// File reads one regular file's contents.
//
// How fs calls it (the division of work between fs and the File): fs
// answers each kernel read with the views Slices lends, written to
// /dev/fuse with one writev and no intermediate buffer, and hands them back
// once the kernel has the bytes. Slices is called from several goroutines
// at once on the same File (the kernel sends reads of up to 1 MiB
// concurrently), with the kernel's ranges. fs reads nothing ahead, so the
// File must: fetch only the chunks that cover the range; on sequential
// reads decode the next chunks in the background, so they decompress on
// the other core while the kernel copies the current ones; keep a bounded
// LRU of decompressed chunks shared by all calls (reads are not
// chunk-aligned, so neighbouring reads share a chunk); and decode a chunk
// once when two calls need it at the same time (singleflight), rather
// than twice. Neither fs nor the File keeps whole-file buffers.
type File interface {
	// Slices returns read-only views of [off, off+n), clipped at the end
	// of the file, in order; holes read as zeros. They stay valid until
	// release is called, which fs does exactly once, after the kernel has
	// the bytes. On error there are no views and release is not called.
	// A chunk that fails verification yields an error wrapping the
	// snapshot package's ErrCorrupt (never wrong bytes); fs answers that
	// read with EIO and logs the file.
	Slices(ctx context.Context, off int64, n int) (views [][]byte, release func(), err error)
	// DataExtents lists the regions that hold data, in order and not
	// overlapping; the rest of the file is holes. Used for
	// SEEK_DATA/SEEK_HOLE on every lseek, so it should return a slice the
	// File already holds (fs does not modify it).
	DataExtents() []Extent
	// Close releases the reader.
	Close() error
}

// Extent is a data region [Offset, Offset+Length).
type Extent struct {
	Offset, Length int64
}

// StatusSource renders the virtual files under status/. Both methods may be
// called from many goroutines at once. MergeStatus combines several sources
// (the repository's and the monitor's) into one.
type StatusSource interface {
	// StatusFiles lists the file names under status/.
	StatusFiles() []string
	// Render produces one whole document for name, freshly, once per open.
	Render(ctx context.Context, name string) ([]byte, error)
}
