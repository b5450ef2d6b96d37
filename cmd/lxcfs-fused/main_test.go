package main

import (
	"os"
	"strings"
	"testing"
)

// TestFlagErrors: a bad flag stops the daemon with an error naming the flag
// and what it accepts, before anything is mounted.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--workers", "0"}, "--workers 0: want at least 1"},
		{[]string{"--host-max-age", "2s"}, "--host-max-age 2s: want 0 (read for every render) up to 1s"},
		{[]string{"--memstat-max-age", "-1ms"}, "--memstat-max-age -1ms: want 0 (read for every render) up to 1s"},
		{[]string{"--cache-ttl", "-1s"}, "--cache-ttl -1s: want 0 (render at every read) up to 1m"},
		{[]string{"--log-level", "loud"}, `--log-level "loud": want debug, info, warn or error`},
		{[]string{"--cgroup-root", "/nonexistent-cgroup-root"}, "--cgroup-root /nonexistent-cgroup-root: detect cgroup layout"},
		{[]string{"serve"}, `unexpected argument "serve"`},
		{[]string{"--sysinfo-timeout", "0"}, "--sysinfo-timeout 0s: want more than 0 up to 10s"},
		{[]string{"--metrics-address", "10.0.0.1"}, `--metrics-address "10.0.0.1": want HOST:PORT, or :PORT for 127.0.0.1 only`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			mp := t.TempDir()
			err := newApp().Run(append([]string{"lxcfs-fused", "--mountpoint", mp, "--state-dir", t.TempDir()}, tc.args...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if entries, err := os.ReadDir(mp); err != nil || len(entries) != 0 {
				t.Errorf("mountpoint after a flag error: %d entries, %v; want an empty directory, nothing mounted", len(entries), err)
			}
		})
	}
}
