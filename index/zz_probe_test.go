package index

import (
	"testing"
)

func BenchmarkZZHashPlain(b *testing.B) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		Hash(buf)
	}
}

func BenchmarkZZHashKeyed(b *testing.B) {
	buf := make([]byte, 1<<20)
	m, _ := NewMasterKey()
	k, _ := KeysFromMaster(m)
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		k.BlobID(buf)
	}
}

func BenchmarkZZSealBlob(b *testing.B) {
	buf := make([]byte, 1<<20)
	m, _ := NewMasterKey()
	k, _ := KeysFromMaster(m)
	out := make([]byte, 0, 2<<20)
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		k.SealBlob(out[:0], DataBlob, 0, ID{}, len(buf), buf)
	}
}
