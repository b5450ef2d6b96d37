//go:build !lxcfs_test_stall

package main

import (
	"bazil.org/fuse"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/content"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/sysinfo"
)

// The shipped daemon has no test switches (see stall.go).
func notifyResend(conn *fuse.Conn) error { return conn.NotifyResend() }

func noRecovery() bool { return false }

func withStall(files *content.Files) fusefs.Renderer { return files }

func withSysinfoStall(*sysinfo.Server, *content.Files) {}
