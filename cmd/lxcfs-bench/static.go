package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
)

// fixed is a Renderer that answers every file with the same bytes: what is
// left of a read's cost is FUSE transport and pkg/fusefs, the floor our
// daemon's figures are compared with.
type fixed []byte

func (f fixed) Identify(int) uint32                   { return 0 }
func (f fixed) Render(string, uint32) ([]byte, error) { return f, nil }

func staticServerMain(args []string) error {
	fl := flag.NewFlagSet("static-server", flag.ContinueOnError)
	mp := fl.String("mountpoint", "", "directory to serve proc/meminfo on (required)")
	workers := fl.Int("workers", fusefs.DefaultWorkers(), "goroutines reading FUSE requests, as lxcfs-fused's default")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *mp == "" {
		return fmt.Errorf("static-server: --mountpoint is required")
	}
	// The host's meminfo, read once: the same size as what lxcfs-fused
	// renders, so both move the same bytes per read.
	content, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return fmt.Errorf("static-server: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tree, err := fusefs.New([]string{"proc/meminfo"}, fixed(content), log)
	if err != nil {
		return fmt.Errorf("static-server: %w", err)
	}
	conn, err := fusefs.Mount(*mp, log)
	if err != nil {
		return fmt.Errorf("static-server: %w", err)
	}
	defer conn.Close()
	done := make(chan error, 1)
	go func() { done <- tree.Serve(conn, *workers) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("static-server: %w", err)
		}
		return nil
	case <-sig:
	}
	if err := fusefs.Unmount(*mp); err != nil {
		return fmt.Errorf("static-server: %w", err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	return nil
}
