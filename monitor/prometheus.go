package monitor

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

// promWriter builds a Prometheus text exposition (format 0.0.4). The text
// format requires all samples of one metric family to follow its HELP and
// TYPE lines in one block, so samples are grouped by family as they are
// added and written out at the end, families in first-use order.
type promWriter struct {
	families []*promFamily
	byName   map[string]*promFamily
}

type promFamily struct {
	name, help, typ string
	body            bytes.Buffer
}

func newPromWriter() *promWriter { return &promWriter{byName: map[string]*promFamily{}} }

func (w *promWriter) family(name, typ, help string) *promFamily {
	f := w.byName[name]
	if f == nil {
		f = &promFamily{name: name, help: help, typ: typ}
		w.byName[name] = f
		w.families = append(w.families, f)
	}
	return f
}

// gauge and counter add one sample. labels alternate name, value.
func (w *promWriter) gauge(name, help string, v float64, labels ...string) {
	w.family(name, "gauge", help).sample(name, v, labels)
}

func (w *promWriter) counter(name, help string, v float64, labels ...string) {
	w.family(name, "counter", help).sample(name, v, labels)
}

func (f *promFamily) sample(name string, v float64, labels []string) {
	b := &f.body
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			writeLabelValue(b, labels[i+1])
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

// writeLabelValue escapes as the text format requires: backslash, double
// quote and line feed.
func writeLabelValue(b *bytes.Buffer, v string) {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func (w *promWriter) bytes() []byte {
	var out bytes.Buffer
	for _, f := range w.families {
		out.WriteString("# HELP ")
		out.WriteString(f.name)
		out.WriteByte(' ')
		out.WriteString(helpEscaper.Replace(f.help))
		out.WriteString("\n# TYPE ")
		out.WriteString(f.name)
		out.WriteByte(' ')
		out.WriteString(f.typ)
		out.WriteByte('\n')
		out.Write(f.body.Bytes())
	}
	return out.Bytes()
}
