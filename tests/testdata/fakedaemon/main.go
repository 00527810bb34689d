// Command fakedaemon is a control socket served by a user who is not the
// repository's owner (TestFakeDaemonIsRefused): it records what clients
// send and answers as the mount daemon would, "FAKE" on stdout and exit
// code 0.
package main

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	sock, log := os.Args[1], os.Args[2]
	ln, err := net.Listen("unix", sock)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.WriteFile(log+".ready", nil, 0o644)
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		var hdr [5]byte
		got := []byte{}
		if n, _ := io.ReadFull(c, hdr[:]); n > 0 {
			got = append(got, hdr[:n]...)
			if n == 5 {
				p := make([]byte, min(binary.BigEndian.Uint32(hdr[1:]), 1<<20))
				n, _ := io.ReadFull(c, p)
				got = append(got, p[:n]...)
			}
		}
		f, _ := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		f.Write(got)
		f.Close()
		c.Write([]byte("o\x00\x00\x00\x05FAKE\nx\x00\x00\x00\x00"))
		c.Close()
	}
}
