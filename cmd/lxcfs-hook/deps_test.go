package main

import (
	"os/exec"
	"strings"
	"testing"
)

// lxcfs-hook starts at every container start: what only lxcfs-hook-cli
// needs must stay out of it (see the package comment for the cost).
func TestHookLinksNoCommandLine(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, heavy := range []string{"github.com/urfave/cli", "github.com/lxcfs-oci/lxcfs-oci/pkg/configure", "github.com/pelletier/go-toml", "text/template"} {
			if strings.HasPrefix(pkg, heavy) {
				t.Errorf("lxcfs-hook links %s: move what needs it to lxcfs-hook-cli", pkg)
			}
		}
	}
}
