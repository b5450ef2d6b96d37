package integration

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInstallUninstall runs make install into a DESTDIR, checks what it
// wrote, and that make uninstall removes exactly that.
func TestInstallUninstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skipf("needs make: %v", err)
	}
	for _, tt := range []struct {
		prefix string
		want   []string
	}{
		{"/usr/local", []string{
			"usr/local/bin/lxcfs-fused", "usr/local/bin/lxcfs-hook", "usr/local/bin/lxcfs-hook-cli", "usr/local/bin/lxcfs-nri", "usr/local/bin/lxcfs-runc",
			"usr/local/lib/systemd/system/lxcfs-fused.service", "usr/local/share/man/man8/lxcfs-hook.8",
			"usr/share/containers/oci/hooks.d/lxcfs.json",
		}},
		{"/usr", []string{
			"usr/bin/lxcfs-fused", "usr/bin/lxcfs-hook", "usr/bin/lxcfs-hook-cli", "usr/bin/lxcfs-nri", "usr/bin/lxcfs-runc",
			"usr/lib/systemd/system/lxcfs-fused.service", "usr/share/containers/oci/hooks.d/lxcfs.json",
			"usr/share/man/man8/lxcfs-hook.8",
		}},
	} {
		t.Run("PREFIX="+tt.prefix, func(t *testing.T) {
			dest := t.TempDir()
			make := func(target string) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				out, err := exec.CommandContext(ctx, "make", "-C", "..", target, "DESTDIR="+dest, "PREFIX="+tt.prefix).CombinedOutput()
				if err != nil {
					t.Fatalf("make %s: %v\n%s", target, err, out)
				}
			}
			bindir := tt.prefix + "/bin"
			// Over an install from before lxcfs-runc was a binary of its
			// own, which linked it to lxcfs-hook: install must replace the
			// link, not write the wrapper through it.
			if err := os.MkdirAll(filepath.Join(dest, bindir), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("lxcfs-hook", filepath.Join(dest, bindir, "lxcfs-runc")); err != nil {
				t.Fatal(err)
			}
			make("install")
			if got := installedFiles(t, dest); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("installed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for name, want := range map[string]string{"lxcfs-runc": "../bin/lxcfs-runc", "lxcfs-hook": "../bin/lxcfs-hook"} {
				got, err := os.ReadFile(filepath.Join(dest, bindir, name))
				built, berr := os.ReadFile(want)
				if fi, lerr := os.Lstat(filepath.Join(dest, bindir, name)); err != nil || berr != nil || lerr != nil || !fi.Mode().IsRegular() || !bytes.Equal(got, built) {
					t.Errorf("installed %s is not the built %s (%v, %v, %v)", name, want, err, berr, lerr)
				}
			}
			hooks := readTrim(t, filepath.Join(dest, "usr/share/containers/oci/hooks.d/lxcfs.json"))
			if !strings.Contains(hooks, `"path": "`+bindir+`/lxcfs-hook"`) {
				t.Errorf("hooks.d file does not run %s/lxcfs-hook:\n%s", bindir, hooks)
			}
			unit := readTrim(t, filepath.Join(dest, strings.TrimPrefix(tt.prefix, "/"), "lib/systemd/system/lxcfs-fused.service"))
			if !strings.Contains(unit, "ExecStart="+bindir+"/lxcfs-fused ") || strings.Contains(unit, "@") {
				t.Errorf("unit's ExecStart is not %s/lxcfs-fused:\n%s", bindir, unit)
			}
			man := readTrim(t, filepath.Join(dest, strings.TrimPrefix(tt.prefix, "/"), "share/man/man8/lxcfs-hook.8"))
			for _, want := range []string{".TH lxcfs-hook 8", "configure", "runtime", "inject"} {
				if !strings.Contains(man, want) {
					t.Errorf("man page lacks %q", want)
				}
			}
			if _, err := exec.LookPath("runc"); err == nil {
				// The installed wrapper passes through.
				cmd := exec.Command(filepath.Join(dest, bindir, "lxcfs-runc"), "--version")
				cmd.Env = append(os.Environ(), "LXCFS_RUNTIME_CONFIG=none")
				if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "runc version") {
					t.Errorf("installed lxcfs-runc --version: %v\n%s", err, out)
				}
			}
			make("uninstall")
			if got := installedFiles(t, dest); len(got) > 0 {
				t.Errorf("left after uninstall: %v", got)
			}
		})
	}
}

// installedFiles lists the files and links under dest, relative to it.
func installedFiles(t *testing.T, dest string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dest, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// TestInstallUnitVerifies asks systemd's own parser about the unit, with
// the binaries of this run in ExecStart (verify checks they exist).
func TestInstallUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skipf("needs systemd-analyze (Debian systemd): %v", err)
	}
	unit := renderUnit(t, filepath.Dir(fusedBin))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lxcfs-fused.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", "./lxcfs-fused.service")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	// verify exits 0 on settings it ignores, but prints them.
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify", "Restart=on-failure", "OOMScoreAdjust=-900", "MemoryMax=512M", "KillMode=process", "FileDescriptorStoreMax=4096", "ExecStopPost=-"} {
		if !strings.Contains(unit, "\n"+want) {
			t.Errorf("unit lacks %s", want)
		}
	}
}

func renderUnit(t *testing.T, bindir string) string {
	t.Helper()
	b, err := os.ReadFile("../deploy/systemd/lxcfs-fused.service")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "@BINDIR@", bindir)
}

// TestInstallUnitStopPost runs the unit's ExecStopPost against a dead mount
// (the daemon killed: it must be detached), a mount whose daemon is alive
// but frozen, as while systemd restarts it with the connection in its fd
// store (it must stay), and a live one (it must stay).
func TestInstallUnitStopPost(t *testing.T) {
	requireRoot(t)
	unit := renderUnit(t, filepath.Dir(fusedBin))
	var script string
	for line := range strings.SplitSeq(unit, "\n") {
		if s, ok := strings.CutPrefix(line, "ExecStopPost=-/bin/sh -c '"); ok {
			script = strings.TrimSuffix(s, "'")
		}
	}
	if script == "" {
		t.Fatal("no ExecStopPost=-/bin/sh -c '...' in the unit")
	}
	stopPost := func(t *testing.T, mp string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The unit's own command, on this test's mountpoint.
		out, err := exec.CommandContext(ctx, "/bin/sh", "-c", strings.ReplaceAll(script, "/var/lib/lxcfs", mp)).CombinedOutput()
		if err != nil {
			t.Fatalf("ExecStopPost: %v\n%s", err, out)
		}
	}
	start := func(t *testing.T) (string, *exec.Cmd) {
		mp := filepath.Join(t.TempDir(), "lxcfs")
		cmd := exec.Command(fusedBin, "--mountpoint", mp, "--state-dir", t.TempDir())
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			if isMounted(t, mp) {
				syscall.Unmount(mp, syscall.MNT_DETACH)
			}
		})
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join(mp, "proc/meminfo")); err == nil && isMounted(t, mp) {
				return mp, cmd
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("lxcfs-fused did not serve %s", mp)
		return "", nil
	}

	waitGroupStopped := func(t *testing.T, pgid int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if groupStopped(pgid) {
				return
			}
		}
		t.Fatalf("process group %d not stopped within 30s", pgid)
	}

	t.Run("live", func(t *testing.T) {
		mp, _ := start(t)
		stopPost(t, mp)
		if !isMounted(t, mp) {
			t.Error("a live mount was detached")
		}
	})
	t.Run("frozen", func(t *testing.T) {
		mp, cmd := start(t)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGSTOP)
		// A worker thread woken by a request just as SIGSTOP arrives can take
		// the request and stop before answering it; the kernel then waits
		// for that answer uninterruptibly, and no probe could be killed.
		// systemd freezes nothing this way; wait for a clean freeze.
		waitGroupStopped(t, cmd.Process.Pid)
		stopPost(t, mp)
		if !isMounted(t, mp) {
			t.Error("a mount whose connection is still held was detached")
		}
	})
	t.Run("dead", func(t *testing.T) {
		mp, cmd := start(t)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		// systemd runs ExecStopPost once the unit's processes are gone and
		// the kernel has finished aborting the connection (in-flight
		// requests fail with EIO for a moment before every one gets ENOTCONN).
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(mp); err != nil && strings.Contains(err.Error(), "not connected") {
				break
			}
		}
		stopPost(t, mp)
		if isMounted(t, mp) {
			t.Error("a dead mount was left")
		}
	})
}

// groupStopped says whether every thread of every process in the process
// group is stopped (state T).
func groupStopped(pgid int) bool {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		b, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		tasks, _ := os.ReadDir("/proc/" + p.Name() + "/task")
		for _, task := range tasks {
			tb, err := os.ReadFile("/proc/" + p.Name() + "/task/" + task.Name() + "/stat")
			if err != nil {
				continue
			}
			if st := strings.Fields(string(tb[strings.LastIndexByte(string(tb), ')')+1:])); len(st) > 0 && st[0] != "T" && st[0] != "t" {
				return false
			}
		}
	}
	return true
}
