//go:build lxcfs_test_stall

package main

import (
	"os"
	"syscall"

	"bazil.org/fuse"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/content"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/sysinfo"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// Switches that wedge a worker on purpose, for the failover tests. They
// exist only in binaries built with the lxcfs_test_stall tag (the
// integration tests' builds), never in make build's.

// stallEnv names a marker file: while it exists, the next read of
// proc/loadavg removes it and never returns, as a worker wedged mid-request
// would.
const stallEnv = "LXCFS_FUSED_TEST_STALL"

// stallSysinfoEnv names a marker file: while it exists, the next sysinfo
// answer removes it and never completes, as a worker killed mid-answer would
// leave it.
const stallSysinfoEnv = "LXCFS_FUSED_TEST_STALL_SYSINFO"

// stallTakenEnv names a marker file: while it exists, the next sysinfo
// call taken from the kernel removes it and is never recorded nor
// answered, as a worker killed between taking a call and recording it
// would leave it.
const stallTakenEnv = "LXCFS_FUSED_TEST_STALL_SYSINFO_TAKEN"

// noResendEnv, when set, makes the supervisor take the kernel for one
// without FUSE_NOTIFY_RESEND, so the request journal is tested on kernels
// that have it.
const noResendEnv = "LXCFS_FUSED_TEST_NO_RESEND"

// noRecoveryEnv, when set, makes the supervisor take the kernel for one
// without FUSE_NOTIFY_RESEND and set up no request journal: what a dead
// worker held is never answered, as on Linux 6.1 before the journal.
const noRecoveryEnv = "LXCFS_FUSED_TEST_NO_RECOVERY"

func noRecovery() bool { return os.Getenv(noRecoveryEnv) != "" }

func notifyResend(conn *fuse.Conn) error {
	if os.Getenv(noResendEnv) != "" || noRecovery() {
		return syscall.EINVAL
	}
	return conn.NotifyResend()
}

func withStall(files *content.Files) fusefs.Renderer {
	if marker := os.Getenv(stallEnv); marker != "" {
		return stallRenderer{files, marker}
	}
	return files
}

type stallRenderer struct {
	*content.Files
	marker string
}

func (s stallRenderer) Render(name string, who uint32) ([]byte, error) {
	if name == content.Loadavg && os.Remove(s.marker) == nil {
		select {}
	}
	return s.Files.Render(name, who)
}

func withSysinfoStall(srv *sysinfo.Server, files *content.Files) {
	if taken := os.Getenv(stallTakenEnv); taken != "" {
		srv.Taken = func() {
			if os.Remove(taken) == nil {
				select {}
			}
		}
	}
	marker := os.Getenv(stallSysinfoEnv)
	if marker == "" {
		return
	}
	srv.Figures = func(pid int, ticks uint64, host view.Sysinfo) (view.Sysinfo, error) {
		if os.Remove(marker) == nil {
			select {}
		}
		return files.Sysinfo(pid, ticks, host)
	}
}
