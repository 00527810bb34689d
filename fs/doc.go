// Package fs serves every snapshot read-only through FUSE (go-fuse v2), so
// that a restore is a plain cp, plus virtual status/ files.
//
// fs consumes only the small interfaces in source.go: a Tree (snapshots,
// directories, file readers) and a StatusSource (rendered documents).
// internal/fsadapter implements Tree over the snapshot package and the
// monitor is a StatusSource by shape; cmd/citadelfs wires them. fs imports
// neither, nor Pebble.
//
// # Tree layout
//
//	<YYYY-MM-DD>/<label>/          each source's newest snapshot of that local day
//	latest/<label>/                each source's newest snapshot
//	hosts/<host>/<YYYY-MM-DD>/<label>/, hosts/<host>/latest/<label>/
//	                               the same per host (Snapshot.Host)
//	snapshots/<YYYY-MM-DDTHH:MM:SS>/<label>/
//	                               every snapshot, by local time; the others
//	                               of a second than the first committed get
//	                               ".<first 8 hex digits of the id>"
//	tags/<tag>/<time>/<label>/     the snapshots that carry a tag (same <time> names)
//	status/<file>                  documents rendered at open (StatusSource)
//
// The top-level day folders and latest/ show only the snapshots of
// Options.Host (the mounting host) and those that record no host; each
// host's are under hosts/<host>/, and snapshots/ and tags/ show all. With
// no Options.Host every snapshot counts as this host's.
//
// A snapshot's folder name never changes when others are taken or, while
// the mount runs, forgotten: names come from the order Tree.Snapshots
// gives (commit order within a second) and each view keeps the names of
// the one before (snapshotNames in view.go). fs does not order snapshots
// itself: latest/ and the day folder show the last of a label in that
// order, so the mount agrees with whatever else the engine calls latest.
//
// Everything above a source's root is virtual (view.go): one immutable view
// is computed from Tree.Snapshots per Tree.Generation, and a virtual folder
// node holds only its path. Inside a source root every node is the
// snapshot's own: mode, owner, size, nanosecond times, link count,
// st_blocks, symlink target and xattrs as recorded. Directories are real
// directories, so cp -a of any of them copies contents. Inode numbers are
// stable across lookups and remounts; hardlinks share one (see identity in
// attr.go for how they are made unique across snapshots).
//
// Files answer SEEK_DATA/SEEK_HOLE from File.DataExtents, so cp -a and cp
// --sparse=auto keep holes. Everything that writes answers EROFS, and the
// mount itself is ro, nosuid, nodev and default_permissions with FUSE ACL
// support (the kernel enforces each file's own owner, mode and POSIX ACL,
// read from its system.posix_acl_access xattr); allow_other is opt-in.
//
// # Caching
//
// Snapshot contents never change. Entries, misses and attributes inside a
// snapshot carry Options.SnapshotTimeout (1h), and files open with
// FOPEN_KEEP_CACHE, so the kernel's page cache serves repeated reads and
// mmap (no direct I/O on snapshot files). A file shown at several paths of
// the same snapshot (latest/x and snapshots/<t>/x) is one inode and shares
// those pages.
//
// Virtual folders change when snapshots are taken or forgotten. Their
// names and attributes carry Options.TopAttrTimeout (1s): a timeout of 0
// made the kernel look up latest/ and latest/<label> again for every path
// cp -a touched (five LOOKUPs per copied file). Instead, Server.Refresh,
// run every 100 ms and by the daemon after every command it runs for a
// client, compares the views and tells the kernel to forget each cached
// name whose meaning changed (FUSE_NOTIFY_INVAL_ENTRY), so a new snapshot
// appears at once without a remount.
//
// Directory listings are loaded once per directory node from Tree.ReadDir
// and kept while the kernel keeps the node. Each read is answered with the
// views File.Slices lends (the snapshot repository's decoded chunks),
// written to /dev/fuse with one writev and no copy. The File reads ahead
// on sequential reads and keeps the decompressed-chunk LRU (see File in
// source.go for the division of work).
//
// FLUSH is answered ENOSYS, which tells the kernel not to send it again:
// a read-only file system has nothing to flush, and close(2) saves a round
// trip.
//
// status/ files render once per open into a per-handle buffer and are served
// with FOPEN_DIRECT_IO, so each open sees fresh numbers and cat reads one
// consistent document; their st_size is 0.
//
// # Errors
//
// Every failure reaches the kernel through one helper (mountFS.errno):
// io/fs.ErrNotExist → ENOENT, context.Canceled (the caller was interrupted)
// → EINTR, a syscall.Errno from the Tree → itself, anything else → EIO. An
// EIO is logged once, with the path inside the mount, and passed to
// Options.OnError so the daemon can raise an alert; a chunk that fails its
// hash check is such an error, and the read returns EIO, never wrong bytes.
// Handlers do not panic and check every type assertion.
//
// # Concurrency
//
// go-fuse runs handlers in parallel, and the kernel sends several reads of
// one file at once. Views are immutable and swapped atomically (a rebuild
// is serialised, concurrent callers wait for it); a directory's child list
// is loaded under the node's mutex. Every Tree and File call gets the
// request's context, which the kernel cancels when the caller is
// interrupted. The tests run with -race.
//
// The process that serves the mount must not read it (go-fuse's deadlock
// notes): the daemon never snapshots or stats files under its own mount,
// except the one readiness check cmd/citadelfs makes from a goroutine.
package fs
