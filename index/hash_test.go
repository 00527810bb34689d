package index

import (
	"encoding/hex"
	"testing"
)

// Blob and pack ids are BLAKE3-256 (citadel.json says "blake3"), so every
// repository ever written depends on Hash giving exactly the standard
// digest, whichever implementation computes it. Vectors from the BLAKE3
// reference test_vectors.json (input byte i is i mod 251).
func TestHashIsStandardBLAKE3(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		{1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
		{1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
		{1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
		{8192, "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63"},
		{102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"},
	} {
		in := make([]byte, tc.n)
		for i := range in {
			in[i] = byte(i % 251)
		}
		got := Hash(in)
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("Hash(%d bytes) = %x, want %s", tc.n, got, tc.want)
		}
	}
}
