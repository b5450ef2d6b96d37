// Package integration runs lxcfs-fused and lxcfs-hook against real kernels,
// FUSE, cgroups and container runtimes. Every test needs root and /dev/fuse;
// elsewhere they skip with the reason.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Paths of the binaries built once for the whole run by TestMain.
var (
	fusedBin string
	hookBin  string
	nriBin   string
	// hookCLIBin is lxcfs-hook-cli, beside hookBin: lxcfs-hook hands it
	// every command line but the delegated create-runtime.
	hookCLIBin string
	// wrapperBin is lxcfs-runc, beside hookBin: the runtime wrapper.
	wrapperBin string
	// sysinfoProg calls sysinfo(2) in containers (testdata/sysinfoprog).
	sysinfoProg string
	holderBin   string // testdata/fdholder, static, run inside containers
	psiProg     string // testdata/psiprog: registers PSI triggers in containers
)

// testVersion is the version the binaries are built with (as the Makefile
// sets it), so tests can tell it in --version, logs and status.
const testVersion = "v0.0.0-integration"

// prebuiltEnv names a directory holding the project's binaries and the
// test programs already built with testVersion, used instead of building
// them (scripts/vm/test-vm.sh).
const prebuiltEnv = "LXCFS_OCI_TEST_BINS"

// runtimeEnv names the OCI runtime the runc-driven tests run instead of runc
// (make test-vm runs them again with crun, which needs pure cgroup v2).
const runtimeEnv = "LXCFS_OCI_TEST_RUNTIME"

// ociRuntime is the runtime binary the tests drive: runc unless runtimeEnv says.
func ociRuntime() string {
	if r := os.Getenv(runtimeEnv); r != "" {
		return r
	}
	return "runc"
}

// testBuildTags are make build's tags plus lxcfs_test_stall, which adds the
// daemon's switches for wedging a worker on purpose (cmd/lxcfs-fused/stall.go).
const testBuildTags = "urfave_cli_no_docs lxcfs_test_stall"

func TestMain(m *testing.M) {
	// The load test re-executes this binary as its container readers.
	if os.Getenv(readerEnv) != "" {
		os.Exit(readerMain())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lxcfs-oci-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The hook path ends up in bundles and hooks.d files that runc and podman
	// execute, so it must be absolute.
	fusedBin = filepath.Join(dir, "lxcfs-fused")
	hookBin = filepath.Join(dir, "lxcfs-hook")
	hookCLIBin = filepath.Join(dir, "lxcfs-hook-cli")
	wrapperBin = filepath.Join(dir, "lxcfs-runc")
	nriBin = filepath.Join(dir, "lxcfs-nri")
	sysinfoProg = filepath.Join(dir, "sysinfoprog")
	holderBin = filepath.Join(dir, "fdholder")
	psiProg = filepath.Join(dir, "psiprog")
	// make test-vm builds them on the host, where Go builds are several
	// times faster than in the emulated guest, and passes their directory.
	if pre := os.Getenv(prebuiltEnv); pre != "" {
		fusedBin, hookBin, nriBin = filepath.Join(pre, "lxcfs-fused"), filepath.Join(pre, "lxcfs-hook"), filepath.Join(pre, "lxcfs-nri")
		hookCLIBin, wrapperBin = filepath.Join(pre, "lxcfs-hook-cli"), filepath.Join(pre, "lxcfs-runc")
		sysinfoProg, holderBin = filepath.Join(pre, "sysinfoprog"), filepath.Join(pre, "fdholder")
		psiProg = filepath.Join(pre, "psiprog")
		return m.Run()
	}
	for bin, pkg := range map[string]string{fusedBin: "../cmd/lxcfs-fused", hookBin: "../cmd/lxcfs-hook", hookCLIBin: "../cmd/lxcfs-hook-cli", wrapperBin: "../cmd/lxcfs-runc", nriBin: "../cmd/lxcfs-nri", sysinfoProg: "./testdata/sysinfoprog", holderBin: "./testdata/fdholder", psiProg: "./testdata/psiprog"} {
		// Built as make build builds them (BUILD_TAGS and BUILD_ENV in the
		// Makefile), plus the daemon's test-only stall switches.
		cmd := exec.Command("go", "build", "-tags", testBuildTags,
			"-ldflags", "-X github.com/lxcfs-oci/lxcfs-oci/pkg/version.Version="+testVersion, "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: build %s: %v\n", pkg, err)
			return 1
		}
	}
	return m.Run()
}

// requireRoot skips tests that need root and /dev/fuse, saying which is missing.
// CI runs as root with /dev/fuse, so there these tests always run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts FUSE, creates cgroups and runs containers")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("needs /dev/fuse: %v", err)
	}
}
