package snapshot

import (
	"strings"
	"testing"
)

func TestValidLabel(t *testing.T) {
	for _, ok := range []string{"models", "a", "system-configs_2", strings.Repeat("x", 64)} {
		if err := ValidLabel(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "bad label!", "a/b", "..", "a.b", "é", "a%b", "a\nb", strings.Repeat("x", 65), strings.Repeat("y", 300)} {
		err := ValidLabel(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if len(err.Error()) > 120 {
			t.Errorf("error for a %d-byte label is %d bytes long", len(bad), len(err.Error()))
		}
	}
}
