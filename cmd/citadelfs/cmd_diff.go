package main

import (
	"context"
	"fmt"

	"citadelfs/index"
	"citadelfs/snapshot"
)

func init() {
	register(&command{
		name:      "diff",
		readsOnly: true,
		summary:   "list what changed between two snapshots (+ added, - removed, M modified, T type changed)",
		usage:     "SNAPSHOT1 SNAPSHOT2   (id prefixes or latest)",
		delegable: true,
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) != 2 {
				return usagef("diff needs two snapshots")
			}
			repo, release, err := openRepo(ctx, env)
			if err != nil {
				return err
			}
			defer release()
			a, err := diffSide(repo, args[0])
			if err != nil {
				return err
			}
			b, err := diffSide(repo, args[1])
			if err != nil {
				return err
			}
			var changes []snapshotChange
			emit := func(c snapshotChange) {
				if env.global.json {
					changes = append(changes, c)
				} else {
					fmt.Fprintf(env.stdout, "%s %s\n", c.Kind, c.Path)
				}
			}
			d := &differ{r: repo, ctx: ctx, emit: emit}
			for _, sa := range a.Sources {
				if sb, ok := b.Source(sa.Label); ok {
					if err := d.trees(sa.Tree, sb.Tree, sa.Label+"/"); err != nil {
						return err
					}
				} else {
					root := sa.RootNode()
					d.gone(&root, "", "-")
				}
			}
			for _, sb := range b.Sources {
				if _, ok := a.Source(sb.Label); !ok {
					root := sb.RootNode()
					d.gone(&root, "", "+")
				}
			}
			if env.global.json {
				if changes == nil {
					changes = []snapshotChange{}
				}
				return writeJSON(env, changes)
			}
			fmt.Fprintf(env.stdout, "%d added, %d removed, %d modified\n", d.added, d.removed, d.modified)
			return nil
		},
	})
}

// diffSide resolves one side of a diff. "latest" is what the mount's
// latest/ and restore latest mean: each source's newest snapshot, put
// together, since sources snapshotted apart are seldom in one snapshot.
func diffSide(repo *snapshot.Repository, ref string) (*snapshot.Snapshot, error) {
	if ref != "latest" {
		return repo.FindSnapshot(ref)
	}
	picks, err := repo.LatestSources()
	if err != nil {
		return nil, err
	}
	out := &snapshot.Snapshot{}
	for _, p := range picks {
		if src, ok := p.Snapshot.Source(p.Label); ok {
			out.Sources = append(out.Sources, *src)
		}
	}
	return out, nil
}

type snapshotChange struct {
	Kind string `json:"kind"`
	Path string `json:"path"`
}

// differ walks two trees side by side; equal subtree ids are skipped
// without loading them, so an unchanged model directory costs nothing.
type differ struct {
	r                        *snapshot.Repository
	ctx                      context.Context
	emit                     func(snapshotChange)
	added, removed, modified int
}

func (d *differ) trees(a, b index.ID, prefix string) error {
	if a == b {
		return nil
	}
	ta, err := d.r.LoadTree(d.ctx, a)
	if err != nil {
		return err
	}
	tb, err := d.r.LoadTree(d.ctx, b)
	if err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(ta.Nodes) || j < len(tb.Nodes) {
		switch {
		case j >= len(tb.Nodes) || (i < len(ta.Nodes) && ta.Nodes[i].Name < tb.Nodes[j].Name):
			d.gone(&ta.Nodes[i], prefix, "-")
			i++
		case i >= len(ta.Nodes) || tb.Nodes[j].Name < ta.Nodes[i].Name:
			d.gone(&tb.Nodes[j], prefix, "+")
			j++
		default:
			if err := d.nodes(&ta.Nodes[i], &tb.Nodes[j], prefix); err != nil {
				return err
			}
			i, j = i+1, j+1
		}
	}
	return nil
}

func (d *differ) gone(n *snapshot.Node, prefix, kind string) {
	p := prefix + n.Name
	if n.Type == snapshot.TypeDir {
		p += "/"
	}
	if kind == "+" {
		d.added++
	} else {
		d.removed++
	}
	d.emit(snapshotChange{kind, p})
}

func (d *differ) nodes(a, b *snapshot.Node, prefix string) error {
	p := prefix + a.Name
	if a.Type != b.Type {
		d.modified++
		d.emit(snapshotChange{"T", p})
		return nil
	}
	if a.Type == snapshot.TypeDir {
		return d.trees(a.Subtree, b.Subtree, p+"/")
	}
	if a.Size != b.Size || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.Mtime != b.Mtime ||
		a.Target != b.Target || !sameContent(a.Content, b.Content) {
		d.modified++
		d.emit(snapshotChange{"M", p})
	}
	return nil
}

func sameContent(a, b []snapshot.ChunkRef) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
