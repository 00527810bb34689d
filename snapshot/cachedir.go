package snapshot

import (
	"bytes"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// cacheTagName and cacheTagSignature are the Cache Directory Tagging
// Specification's (https://bford.info/cachedir/): a directory holding a
// regular file CACHEDIR.TAG that begins with the signature is a cache.
const (
	cacheTagName      = "CACHEDIR.TAG"
	cacheTagSignature = "Signature: 8a477f597d28d172789f06886806bc55"
)

// hasCacheTag reports whether the directory at dir, whose entries are
// names, holds a valid cache tag. A symlink or a file without the
// signature is no tag.
func hasCacheTag(dir string, names []string) bool {
	found := false
	for _, n := range names {
		if n == cacheTagName {
			found = true
			break
		}
	}
	if !found {
		return false
	}
	fd, err := unix.Open(joinPath(dir, cacheTagName), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), cacheTagName)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	buf := make([]byte, len(cacheTagSignature))
	if _, err := io.ReadFull(f, buf); err != nil {
		return false
	}
	return bytes.Equal(buf, []byte(cacheTagSignature))
}
