package snapshot

import (
	"errors"

	"golang.org/x/sys/unix"
)

type extent struct{ off, len int64 }

// dataExtents lists the regions of a file that hold data. Only a file
// whose allocated blocks are fewer than its size can have holes, so the
// common case costs no extra system calls.
func dataExtents(fd int, st *unix.Stat_t) ([]extent, error) {
	if st.Size == 0 {
		return nil, nil
	}
	if st.Blocks*512 >= st.Size {
		return []extent{{0, st.Size}}, nil
	}
	var out []extent
	var off int64
	for off < st.Size {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			if errors.Is(err, unix.EINVAL) { // file system without SEEK_DATA
				return []extent{{0, st.Size}}, nil
			}
			return nil, err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		if hole > st.Size {
			hole = st.Size
		}
		if hole > data {
			out = append(out, extent{data, hole - data})
		}
		off = hole
	}
	return out, nil
}
