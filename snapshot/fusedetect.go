package snapshot

import (
	"golang.org/x/sys/unix"
)

// fuseSuperMagic is FUSE's f_type in statfs(2).
const fuseSuperMagic = 0x65735546

func isFUSE(path string) bool {
	var sfs unix.Statfs_t
	return unix.Statfs(path, &sfs) == nil && sfs.Type == fuseSuperMagic
}
