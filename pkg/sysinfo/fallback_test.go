package sysinfo

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestFallbacksLogged: the first fallback of a listener is a warning with
// its reason; those within fallbackLogEvery are counted, and the next
// warning after it says how many were not logged.
func TestFallbacksLogged(t *testing.T) {
	var buf bytes.Buffer
	f := &fallbacks{log: slog.New(slog.NewTextHandler(&buf, nil)), initPid: 42}
	f.note("figures not ready in time")
	f.note("no container figures")
	f.note("no container figures")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") ||
		!strings.Contains(lines[0], "figures not ready in time") || !strings.Contains(lines[0], "init=42") {
		t.Fatalf("after three fallbacks within the period, log =\n%s\nwant one warning with the first reason", buf.String())
	}
	f.last = f.last.Add(-fallbackLogEvery - time.Second)
	f.note("cannot write the answer into the caller")
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "cannot write the answer") || !strings.Contains(lines[1], "not_logged_since_last=2") {
		t.Fatalf("after the period, log =\n%s\nwant a second warning counting the 2 not logged", buf.String())
	}
}
