package main

import (
	"os/exec"
	"strings"
	"testing"
)

// lxcfs-hook starts at every container start: what only lxcfs-hook-cli
// needs (the command line, create-runtime run in-process, the wrapper, the
// journal) must stay out of it, see the package comment for the cost. Each
// of these was linked once and cost start-up time.
func TestHookLinksOnlyTheDelegation(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	heavy := []string{
		"github.com/urfave/cli", "github.com/pelletier/go-toml", "text/template", // the command line
		"github.com/lxcfs-oci/lxcfs-oci/pkg/configure",
		"github.com/lxcfs-oci/lxcfs-oci/pkg/hookrun", // create-runtime in-process, the wrapper
		"github.com/lxcfs-oci/lxcfs-oci/pkg/mountns",
		"github.com/lxcfs-oci/lxcfs-oci/pkg/register",
		"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper",
		"github.com/opencontainers/runtime-spec", "github.com/cyphar/filepath-securejoin",
		"github.com/coreos/go-systemd", "log/slog", "log/syslog", "net", "encoding/json",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, h := range heavy {
			if pkg == h || strings.HasPrefix(pkg, h+"/") {
				t.Errorf("lxcfs-hook links %s: move what needs it to lxcfs-hook-cli", pkg)
			}
		}
	}
}
