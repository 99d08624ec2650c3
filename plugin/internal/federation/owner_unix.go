//go:build unix

package federation

import (
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of the file it replaces, when this process may (root
// editing a control plane's file); otherwise the new file is the caller's, as an editor's
// would be.
func keepOwner(f *os.File, old os.FileInfo) {
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		_ = f.Chown(int(st.Uid), int(st.Gid)) // best effort: see above
	}
}
