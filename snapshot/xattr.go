package snapshot

import (
	"sort"

	"golang.org/x/sys/unix"
)

// readXattrs returns a path's extended attributes in name order.
func readXattrs(path string) []Xattr {
	sz, err := unix.Llistxattr(path, nil)
	if err != nil || sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(path, buf)
	if err != nil {
		return nil
	}
	var out []Xattr
	for _, name := range splitNul(buf[:sz]) {
		vs, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vs)
		vs, err = unix.Lgetxattr(path, name, val)
		if err != nil {
			continue
		}
		out = append(out, Xattr{Name: name, Value: val[:vs]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}
