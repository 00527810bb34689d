// Command memtouch measures how fast this machine writes into memory it
// has not touched before, against memory already in use. make bench prints
// both next to its results.
//
// On a virtual machine whose host reclaims the guest's free memory
// (virtio-balloon free page reporting), the first write to each page is a
// host page fault, and the rate swings with the host's load. Every read
// through a FUSE mount fills the kernel's page cache with new pages, and
// so does every copy's destination, so this number moves the mount and cp
// results more than anything citadelfs does.
package main

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"
)

const (
	size  = 512 << 20 // bytes mapped per run
	block = 1 << 20   // one copy, like a 1 MiB read reply
	runs  = 3
)

func main() {
	src := make([]byte, block)
	for i := range src {
		src[i] = byte(i)
	}
	var first, again []float64
	for range runs {
		m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			fmt.Fprintln(os.Stderr, "memtouch:", err)
			os.Exit(1)
		}
		first = append(first, fill(m, src))
		again = append(again, fill(m, src))
		syscall.Munmap(m)
	}
	fmt.Printf("%.0f %.0f\n", median(first), median(again))
}

// fill copies src over all of m and returns the rate in MB/s.
func fill(m, src []byte) float64 {
	start := time.Now()
	for off := 0; off < len(m); off += len(src) {
		copy(m[off:], src)
	}
	return float64(len(m)) / time.Since(start).Seconds() / 1e6
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}
