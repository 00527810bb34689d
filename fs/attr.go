package fs

import (
	"encoding/binary"
	"hash/fnv"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

const (
	sIFMT  = syscall.S_IFMT
	sIFDIR = syscall.S_IFDIR
	sIFREG = syscall.S_IFREG
	sIFLNK = syscall.S_IFLNK
)

// identity derives the go-fuse identity (inode number and generation) of
// an object from a 128-bit hash of what makes it unique. go-fuse shares one
// Inode, and the kernel one page cache, between all lookups that give the
// same identity, so it must be unique per object and stable across
// lookups and remounts:
//
//   - a file, symlink or special file is one object per (snapshot, label,
//     Node.Ino), wherever it is shown: latest/models/x and
//     snapshots/<t>/models/x of the same snapshot share the kernel's cached
//     pages, and hardlinks inside a snapshot share an inode as they did on
//     disk;
//   - a directory inside a snapshot is one object per (virtual path of its
//     source root, snapshot, Node.Ino): the kernel does not allow one
//     directory inode at two places in the tree;
//   - a virtual folder is one object per virtual path, so latest/ keeps
//     its inode while what it shows changes.
//
// The generation carries the other 64 bits of the hash, so go-fuse (which
// keys on inode number and generation together) only merges two objects if
// all 128 bits collide; st_ino shows the first 64.
func identity(mode uint32, parts ...string) gofs.StableAttr {
	h := fnv.New128a()
	for _, p := range parts {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	ino := binary.LittleEndian.Uint64(sum[:8])
	// Below 2^63 stays clear of go-fuse's automatic numbers; 0 and 1
	// (the root) are reserved.
	ino &^= 1 << 63
	if ino < 2 {
		ino += 2
	}
	return gofs.StableAttr{Mode: mode & sIFMT, Ino: ino, Gen: binary.LittleEndian.Uint64(sum[8:])}
}

func u64(v uint64) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return string(b[:])
}

// contentIdentity is the identity of node n inside source scope sc; parent
// is the identity of its directory, used only when the Tree gives no inode
// number.
func contentIdentity(sc *scope, parent gofs.StableAttr, n Node) gofs.StableAttr {
	ino := u64(n.Ino)
	if n.Ino == 0 {
		ino = "p" + u64(parent.Ino) + u64(parent.Gen) + n.Name
	}
	if n.Mode&sIFMT == sIFDIR {
		return identity(n.Mode, "d", sc.vpath, sc.snapID, sc.label, ino)
	}
	return identity(n.Mode, "f", sc.snapID, sc.label, ino)
}

// virtualIdentity is the identity of a virtual folder or status file.
func virtualIdentity(mode uint32, path string) gofs.StableAttr {
	return identity(mode, "v", path)
}

// fillAttr copies a snapshot node's metadata into a FUSE attribute,
// faithfully: no permission defaults (the mount sets NullPermissions), and
// st_blocks as recorded so sparse files look sparse.
func fillAttr(a *fuse.Attr, n Node, ino uint64) {
	a.Ino = ino
	a.Mode = n.Mode
	a.Size = uint64(max(n.Size, 0))
	if n.Mode&sIFMT == sIFLNK && n.Size == 0 {
		a.Size = uint64(len(n.Target))
	}
	// Blksize set means go-fuse keeps our Blocks instead of deriving
	// them from the size.
	a.Blksize = 4096
	a.Blocks = uint64(max(n.Blocks, 0))
	a.Nlink = max(n.Nlink, 1) // 0: not recorded (Node.Nlink)
	a.Uid = n.UID
	a.Gid = n.GID
	a.Rdev = n.Rdev
	setTimes(a, n.Atime, n.Mtime, n.Ctime)
}

// setTimes sets the three times; a zero time.Time (unknown) becomes the
// epoch rather than a date in year 1.
func setTimes(a *fuse.Attr, atime, mtime, ctime time.Time) {
	for _, t := range []*time.Time{&atime, &mtime, &ctime} {
		if t.IsZero() {
			*t = time.Unix(0, 0)
		}
	}
	a.SetTimes(&atime, &mtime, &ctime)
}

// fillVirtualAttr describes a virtual folder: root-owned, read and search
// for all (default_permissions applies it; without allow_other only the
// mounting user gets in anyway).
func fillVirtualAttr(a *fuse.Attr, ino uint64, mode uint32, nlink uint32, mtime time.Time) {
	a.Ino = ino
	a.Mode = mode
	a.Nlink = nlink
	a.Blksize = 4096
	setTimes(a, mtime, mtime, mtime)
}
