package index

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrInsecurePermissions: another user can write the repository (or
// planted something in it), so a command run as root could be turned
// against the host through files that user controls.
var ErrInsecurePermissions = errors.New("repository is writable by other users")

// CheckPermissions refuses a repository that a user other than the
// caller (or root) can change: the directory itself, citadel.json,
// index/ and packs/ must be owned by the caller or root and writable by
// neither group nor others; so must every directory above the repository,
// except a sticky one (/tmp), where others cannot rename or remove what
// is not theirs. Whoever can write there can plant a symlinked lock file,
// a fake daemon.sock or a doctored index that the next root command
// trusts. Files inside packs/ and index/ are not walked: making them
// needs write access to these directories.
func CheckPermissions(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	// The path itself may be a symlink the administrator made (a backup
	// disk mounted elsewhere): check what it resolves to, and the
	// directories above that.
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil // missing: opening it reports that
	}
	uid := uint32(os.Geteuid())
	for _, name := range []string{"", configName, indexDir, packsDir} {
		p := filepath.Join(real, name)
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			continue // missing parts are reported by whoever opens them
		}
		if err := ownedSafely(p, &st, uid, false); err != nil {
			return err
		}
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err == nil {
			if err := ownedSafely(d, &st, uid, true); err != nil {
				return err
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func ownedSafely(p string, st *unix.Stat_t, uid uint32, stickyOK bool) error {
	if st.Uid != uid && st.Uid != 0 {
		return fmt.Errorf("index: %s is owned by uid %d, not by uid %d or root; that user could plant files this command would trust (chown it, or pass --insecure-repo-permissions): %w",
			p, st.Uid, uid, ErrInsecurePermissions)
	}
	if st.Mode&0o022 == 0 || stickyOK && st.Mode&unix.S_ISVTX != 0 && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	return fmt.Errorf("index: %s is writable by its group or by others (mode %04o); they could plant files this command would trust ('chmod go-w %s', or pass --insecure-repo-permissions): %w",
		p, st.Mode&0o7777, p, ErrInsecurePermissions)
}
