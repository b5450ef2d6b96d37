//go:build !lxcfs_test_stall

package main

import (
	"github.com/lxcfs-oci/lxcfs-oci/pkg/content"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/sysinfo"
)

// The shipped daemon has no test switches (see stall.go).
func withStall(files *content.Files) fusefs.Renderer { return files }

func withSysinfoStall(*sysinfo.Server, *content.Files) {}
