// Package fsadapter serves a snapshot.Repository through the fs package:
// it implements fs.Tree (and fs.File) over the snapshot engine, so that fs
// imports no project package and snapshot knows nothing of FUSE. cmd
// wires it (citadelfs mount); it imports fs and snapshot (and monitor's
// byte formatting), nothing above.
//
// What it decides, each in one place:
//
//   - Order: Snapshots passes Repository.Snapshots through in
//     snapshot.Compare's order; fs shows that order (latest/ is its last
//     of a label), so the mount and restore/diff/forget mean one latest.
//   - Inode numbers (inodeOf): unique within one source of one snapshot,
//     a hash of the path, or of (device, inode) for a file with more than
//     one link, so hardlinks share one. Identity across snapshots, labels
//     and folders is fs's alone (it mixes in snapshot id, label and, for
//     directories, the folder shown), so it is not decided twice.
//   - Attributes (toFSNode): the snapshot node's as recorded, the link
//     count included (snapshot.Node.Nlink, the source's st_nlink); a
//     directory's mode type bits are S_IFDIR whatever was stored.
//   - Corrupt reads (CorruptReadRecord, the mount's fs.Options.OnError):
//     reads that found corrupt data, counted per path up to a bound and
//     kept in the repository (index.CorruptReads) for the monitor's
//     backup_corrupt, across daemon restarts, until a full check passes.
//   - The repository's status files (NewStatus): status/snapshots, with
//     the table citadelfs snapshots prints too (WriteSnapshotTable), and
//     status/repo, whose sizes (ReadRepoStats) also give the monitor its
//     repository size; the dedup ratio counts data, not sparse holes.
//   - Errors: a read of a snapshot forgotten (and pruned) since fs listed
//     it is io/fs.ErrNotExist for a directory and ESTALE for an open
//     file, like NFS, never EIO or a corrupt-data alert; damage is
//     snapshot.ErrCorrupt, which fs answers with EIO.
package fsadapter
