package snapshot

import (
	"golang.org/x/sys/unix"
)

func nodeFromStat(name string, st *unix.Stat_t) *Node {
	n := &Node{Name: name, Mode: st.Mode, UID: st.Uid, GID: st.Gid, Size: st.Size,
		Mtime: st.Mtim.Nano(), Atime: st.Atim.Nano(), Ctime: st.Ctim.Nano(),
		Inode: st.Ino, Dev: st.Dev, Nlink: uint32(st.Nlink), Rdev: st.Rdev}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.Type = TypeFile
	case unix.S_IFDIR:
		n.Type = TypeDir
		n.Size = 0
		// Nlink stays the source's (see Node.Nlink): it changes only
		// when a subdirectory comes or goes, which changes the tree
		// anyway, so unchanged trees stay byte-identical.
	case unix.S_IFLNK:
		n.Type = TypeSymlink
	case unix.S_IFIFO:
		n.Type = TypeFIFO
		n.Size = 0
	case unix.S_IFCHR:
		n.Type = TypeCharDev
		n.Size = 0
	case unix.S_IFBLK:
		n.Type = TypeBlockDev
		n.Size = 0
	default:
		n.Type = TypeSocket
		n.Size = 0
	}
	if n.Type != TypeFile {
		n.Inode, n.Dev = 0, 0 // only files form hardlink groups
		if n.Type != TypeDir {
			n.Nlink = 1
		}
	}
	// Atime is recorded for regular files (read with O_NOATIME, so our own
	// reads never change it). Listing a directory or reading a symlink
	// updates its atime, so those are left out: unchanged trees stay
	// byte-identical and deduplicate.
	if n.Type != TypeFile {
		n.Atime = 0
	}
	return n
}
