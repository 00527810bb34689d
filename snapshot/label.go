package snapshot

import "fmt"

// MaxLabelLen is the longest source label accepted, in bytes.
const MaxLabelLen = 64

// ValidLabel is the one rule for a source label, checked wherever a label
// enters (the config file, --source, restore arguments, TakeSnapshot):
// 1 to 64 bytes of [A-Za-z0-9_-]. A label names a directory in the mount and
// in a restore target, a systemd unit (citadel-backup-LABEL.service) and a
// metric label, so nothing that needs quoting or escaping in any of them is
// allowed. Manifests already written are read with the looser validName.
func ValidLabel(label string) error {
	if label == "" {
		return fmt.Errorf("source label is empty")
	}
	if len(label) > MaxLabelLen {
		return fmt.Errorf("source label %.20q... is %d bytes; at most %d", label, len(label), MaxLabelLen)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("source label %q: only letters, digits, '_' and '-' are allowed", label)
		}
	}
	return nil
}
