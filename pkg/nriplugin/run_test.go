package nriplugin

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

// TestRunRetriesUntilCancelled: with no runtime listening, Run keeps trying
// (logging why) rather than exiting, and returns when its context ends.
func TestRunRetriesUntilCancelled(t *testing.T) {
	log := &lockedBuffer{}
	p := &Plugin{Config: Config{HookPath: DefaultHookPath, Mode: wrapper.ModeOptIn}, Log: slog.New(slog.NewTextHandler(log, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, p, Options{Socket: filepath.Join(t.TempDir(), "nri.sock"), Name: "lxcfs", Index: "50", MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(log.String(), "cannot register") < 2 {
		select {
		case err := <-done:
			t.Fatalf("Run returned %v without a runtime, want it to keep trying", err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second attempt within 30s; log:\n%s", log.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run still running 30s after its context ended")
	}
}

// lockedBuffer is a log sink read while Run writes to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunRejectsBadConfig(t *testing.T) {
	p := &Plugin{Config: Config{HookPath: "lxcfs-hook", Mode: wrapper.ModeOptIn}, Log: slog.Default()}
	if err := Run(context.Background(), p, Options{}); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Errorf("Run with a relative hook path: %v, want an error saying so", err)
	}
}
