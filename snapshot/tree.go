package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"citadelfs/index"
)

// NodeType is the kind of file-system object a Node records.
type NodeType uint8

const (
	TypeFile NodeType = iota + 1
	TypeDir
	TypeSymlink
	TypeFIFO
	TypeCharDev
	TypeBlockDev
	TypeSocket
)

// Node is one entry of a directory tree blob: everything a faithful restore
// needs. Names are raw bytes (a Go string may hold any bytes).
type Node struct {
	Name  string
	Type  NodeType
	Mode  uint32 // full st_mode, type bits included
	UID   uint32
	GID   uint32
	Size  int64
	Mtime int64 // ns since the epoch
	Atime int64
	Ctime int64
	// Inode and Dev are the source's; with Nlink > 1 they group hardlinks.
	Inode uint64
	Dev   uint64
	// Nlink is the source's st_nlink, the one rule for every node type,
	// directories included (2 + subdirectories on ext4 and xfs, 1 on
	// btrfs), recorded once here and served as it is by the mount. It can
	// count subdirectories the snapshot left out (--exclude, the parents
	// of a source of paths), which find(1) takes as a reason to look, not
	// to skip. 0 in trees written before directories kept theirs: the
	// mount then shows 1, "not counted", as btrfs does.
	Nlink uint32
	Rdev  uint64
	// Target of a symlink.
	Target string
	// Subtree is the tree blob of a directory.
	Subtree index.ID
	// Content lists the data chunks of a regular file in file order; the
	// gaps between them are holes (sparse regions).
	Content []ChunkRef
	Xattrs  []Xattr
}

// ChunkRef places one data blob in a file.
type ChunkRef struct {
	Offset int64
	Length int64
	ID     index.ID
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Tree is one directory's entries, sorted by name.
type Tree struct {
	Nodes []Node
	// Parts is set for a directory stored as a part index (a very large
	// directory, see treeBuilder): DecodeTree of the index blob returns
	// the parts and no nodes, and Repository.LoadTree returns every node
	// with Parts still set, so that prune keeps the part blobs and check
	// counts them.
	Parts []TreePart
}

// TreePart is one part of a split directory listing: a tree blob holding
// Count entries, the first of them named First.
type TreePart struct {
	First string
	Count uint64
	ID    index.ID
}

// Tree blob layout: "CTRE" | version u8=1 | uvarint count | nodes, each:
//
//	name (uvarint len + bytes) | type u8 | mode, uid, gid uvarints |
//	size, mtime, atime, ctime varints | inode, dev, nlink, rdev uvarints |
//	target (len + bytes) | subtree [32] if dir |
//	content count uvarint, then per chunk: offset, length uvarints, id [32] |
//	xattr count uvarint, then per xattr: name (len+bytes), value (len+bytes)
const treeMagic = "CTRE"

// Tree blob versions: a listing holds nodes; an index lists the parts of a
// directory too big for one blob (see encodeTreeIndex).
const (
	treeListing = 1
	treeIndex   = 2
)

// Encode serialises the tree deterministically: equal trees give equal
// bytes, so an unchanged directory deduplicates to the same blob. It always
// writes one listing blob (version 1); a directory too big for one blob is
// split by treeBuilder into such listings and a part index (version 2).
func (t *Tree) Encode() []byte {
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })
	b := make([]byte, 0, 64+len(t.Nodes)*96)
	b = append(b, treeMagic...)
	b = append(b, treeListing)
	b = binary.AppendUvarint(b, uint64(len(t.Nodes)))
	for i := range t.Nodes {
		b = appendNode(b, &t.Nodes[i])
	}
	return b
}

// appendNode appends one node in the listing layout above.
func appendNode(b []byte, n *Node) []byte {
	b = appendBytes(b, n.Name)
	b = append(b, byte(n.Type))
	b = binary.AppendUvarint(b, uint64(n.Mode))
	b = binary.AppendUvarint(b, uint64(n.UID))
	b = binary.AppendUvarint(b, uint64(n.GID))
	b = binary.AppendVarint(b, n.Size)
	b = binary.AppendVarint(b, n.Mtime)
	b = binary.AppendVarint(b, n.Atime)
	b = binary.AppendVarint(b, n.Ctime)
	b = binary.AppendUvarint(b, n.Inode)
	b = binary.AppendUvarint(b, n.Dev)
	b = binary.AppendUvarint(b, uint64(n.Nlink))
	b = binary.AppendUvarint(b, n.Rdev)
	b = appendBytes(b, n.Target)
	if n.Type == TypeDir {
		b = append(b, n.Subtree[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(n.Content)))
	for _, c := range n.Content {
		b = binary.AppendUvarint(b, uint64(c.Offset))
		b = binary.AppendUvarint(b, uint64(c.Length))
		b = append(b, c.ID[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(n.Xattrs)))
	for _, x := range n.Xattrs {
		b = appendBytes(b, x.Name)
		b = appendBytes(b, string(x.Value))
	}
	return b
}

// encodeTreeIndex serialises the part index of a split directory:
//
//	"CTRE" | version u8=2 | uvarint part count | parts, each:
//	first name (uvarint len + bytes) | node count uvarint | part id [32]
//
// Each part is a version-1 listing of a run of the directory's entries;
// the parts are in name order and together hold every entry once.
func encodeTreeIndex(parts []TreePart) []byte {
	b := make([]byte, 0, 16+len(parts)*64)
	b = append(b, treeMagic...)
	b = append(b, treeIndex)
	b = binary.AppendUvarint(b, uint64(len(parts)))
	for _, p := range parts {
		b = appendBytes(b, p.First)
		b = binary.AppendUvarint(b, p.Count)
		b = append(b, p.ID[:]...)
	}
	return b
}

func appendBytes(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// ErrCorrupt marks data that fails verification: a chunk whose hash does
// not match, an undecodable blob, a missing pack. Readers return it instead
// of wrong bytes.
var ErrCorrupt = errors.New("corrupt data")

type treeDecoder struct {
	b   []byte
	err error
}

func (d *treeDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("snapshot: tree: bad %s: %w", what, ErrCorrupt)
	}
}

func (d *treeDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *treeDecoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *treeDecoder) bytes(what string, max uint64) string {
	n := d.uvarint(what)
	if d.err != nil {
		return ""
	}
	if n > max || n > uint64(len(d.b)) {
		d.fail(what)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *treeDecoder) id(what string) (id index.ID) {
	if d.err != nil {
		return
	}
	if len(d.b) < len(id) {
		d.fail(what)
		return
	}
	copy(id[:], d.b)
	d.b = d.b[len(id):]
	return
}

func (d *treeDecoder) u32(what string) uint32 {
	v := d.uvarint(what)
	if v > 1<<32-1 {
		d.fail(what)
	}
	return uint32(v)
}

// DecodeTree parses a tree blob. Every length is checked against the bytes
// left, so a corrupt blob yields ErrCorrupt, never a panic or a huge
// allocation.
func DecodeTree(b []byte) (*Tree, error) {
	if len(b) < 5 || string(b[:4]) != treeMagic || (b[4] != treeListing && b[4] != treeIndex) {
		return nil, fmt.Errorf("snapshot: tree: bad header: %w", ErrCorrupt)
	}
	d := &treeDecoder{b: b[5:]}
	if b[4] == treeIndex {
		return d.treeIndex()
	}
	count := d.uvarint("count")
	if count > uint64(len(d.b)) { // every node takes at least one byte
		return nil, fmt.Errorf("snapshot: tree: bad count: %w", ErrCorrupt)
	}
	t := &Tree{Nodes: make([]Node, 0, count)}
	for i := uint64(0); i < count && d.err == nil; i++ {
		var n Node
		n.Name = d.bytes("name", 4096)
		if d.err == nil && len(d.b) > 0 {
			n.Type = NodeType(d.b[0])
			d.b = d.b[1:]
		} else {
			d.fail("type")
		}
		if n.Type < TypeFile || n.Type > TypeSocket {
			d.fail("type")
		}
		n.Mode = d.u32("mode")
		n.UID = d.u32("uid")
		n.GID = d.u32("gid")
		n.Size = d.varint("size")
		n.Mtime = d.varint("mtime")
		n.Atime = d.varint("atime")
		n.Ctime = d.varint("ctime")
		n.Inode = d.uvarint("inode")
		n.Dev = d.uvarint("dev")
		n.Nlink = d.u32("nlink")
		n.Rdev = d.uvarint("rdev")
		n.Target = d.bytes("target", 1<<16)
		if n.Type == TypeDir {
			n.Subtree = d.id("subtree")
		}
		nc := d.uvarint("content count")
		if nc > uint64(len(d.b))/34 {
			d.fail("content count")
			break
		}
		if nc > 0 {
			n.Content = make([]ChunkRef, nc)
		}
		var end int64
		for j := range n.Content {
			c := &n.Content[j]
			c.Offset = int64(d.uvarint("chunk offset"))
			c.Length = int64(d.uvarint("chunk length"))
			c.ID = d.id("chunk id")
			if c.Offset < end || c.Length <= 0 || c.Length > index.MaxBlobSize || c.Offset+c.Length > n.Size {
				d.fail("chunk extent")
			}
			end = c.Offset + c.Length
		}
		nx := d.uvarint("xattr count")
		if nx > uint64(len(d.b))/2 {
			d.fail("xattr count")
			break
		}
		for j := uint64(0); j < nx && d.err == nil; j++ {
			name := d.bytes("xattr name", 255)
			val := d.bytes("xattr value", 1<<16)
			n.Xattrs = append(n.Xattrs, Xattr{Name: name, Value: []byte(val)})
		}
		// Restore joins names onto the target path and Find binary-searches
		// them: a name that is not one plain path component could leave the
		// target, and a repeated one could put a directory where a symlink
		// was just restored, so the children would be written through it.
		if !validName(n.Name) {
			d.fail("name")
		} else if len(t.Nodes) > 0 && n.Name <= t.Nodes[len(t.Nodes)-1].Name {
			d.fail("name order (repeated or unsorted)")
		}
		if n.Size < 0 {
			d.fail("size")
		}
		t.Nodes = append(t.Nodes, n)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return t, nil
}

// treeIndex decodes the rest of a part index: at least one part, first
// names strictly increasing, every count at least one.
func (d *treeDecoder) treeIndex() (*Tree, error) {
	count := d.uvarint("part count")
	if count == 0 || count > uint64(len(d.b))/34 { // a part takes at least 34 bytes
		return nil, fmt.Errorf("snapshot: tree: bad part count: %w", ErrCorrupt)
	}
	t := &Tree{Parts: make([]TreePart, 0, count)}
	for i := uint64(0); i < count && d.err == nil; i++ {
		p := TreePart{First: d.bytes("part name", 4096), Count: d.uvarint("part size")}
		p.ID = d.id("part id")
		if !validName(p.First) || p.Count == 0 {
			d.fail("part")
		} else if len(t.Parts) > 0 && p.First <= t.Parts[len(t.Parts)-1].First {
			d.fail("part order")
		}
		t.Parts = append(t.Parts, p)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return t, nil
}

// validName reports whether name is one plain path component: not empty,
// not "." or "..", without '/' or NUL. Tree entry names and source labels
// (a label is the name of its source's directory in a restore) obey it.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !containsSlashOrNUL(name)
}

func containsSlashOrNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == 0 {
			return true
		}
	}
	return false
}

// Find returns the node named name, using binary search on the sorted nodes.
func (t *Tree) Find(name string) (*Node, bool) {
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= name })
	if i < len(t.Nodes) && t.Nodes[i].Name == name {
		return &t.Nodes[i], true
	}
	return nil, false
}
