package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// hookBench runs scripts/hook-latency.sh: runc run of a trivial container
// with and without lxcfs-hook, alternating, and reports what the hook adds.
func (b *bench) hookBench() error {
	script := filepath.Join(b.cfg.repo, "scripts/hook-latency.sh")
	fmt.Fprintf(os.Stderr, "lxcfs-bench: hook benchmark (%d runs each)\n", b.cfg.hookRuns)
	cmd := exec.Command("bash", script, strconv.Itoa(b.cfg.hookRuns))
	cmd.Env = append(os.Environ(), "BIN_DIR="+filepath.Dir(b.cfg.fused))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", script, err)
	}
	var waitErr error
	done := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(done) }()
	// The script removes its containers and mount on TERM; an interrupted
	// run gives it the chance.
	b.atExit(func() {
		select {
		case <-done:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
			}
		}
	})
	<-done
	if waitErr != nil {
		return fmt.Errorf("%s: %w\n%s", script, waitErr, out.String())
	}
	b.rep.hookTable(out.String())
	return nil
}
