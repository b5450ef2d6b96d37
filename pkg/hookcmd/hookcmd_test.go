package hookcmd_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

// Every command line this project writes into a config (the wrapper's, the
// NRI plugin's and inject's, and the hooks.d file's) must be taken by
// Parse: one it declined would still work, through lxcfs-hook-cli, at
// the cost of a second exec at every container start.
func TestParseTakesWrittenHookLines(t *testing.T) {
	for _, o := range []wrapper.HookOptions{
		{},
		{LXCFSRoot: "/var/lib/lxcfs", Always: true},
		{LXCFSRoot: "/r", Always: true, FailClosed: true, LogFile: "/l", StateDir: "/s"},
		{FailClosed: true, LogFile: "-"},
	} {
		args := wrapper.HookArgs(o)
		got, ok := hookcmd.Parse(args[1:])
		if !ok {
			t.Errorf("%q: declined", args)
			continue
		}
		want := hookcmd.Default()
		if o.LXCFSRoot != "" {
			want.Root = o.LXCFSRoot
		}
		if o.LogFile != "" {
			want.LogFile = o.LogFile
		}
		if o.StateDir != "" {
			want.StateDir = o.StateDir
		}
		want.Always, want.FailClosed = o.Always, o.FailClosed
		if got != want {
			t.Errorf("%q: %+v, want %+v", args, got, want)
		}
	}
	for _, file := range []string{"../../hooks.d/lxcfs.json", "../../hooks.d/lxcfs-always.json.example"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			Hook struct{ Args []string } `json:"hook"`
		}
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if _, ok := hookcmd.Parse(h.Hook.Args[1:]); !ok {
			t.Errorf("%s: %q declined", file, h.Hook.Args)
		}
	}
}

func TestRuntimeForName(t *testing.T) {
	for argv0, want := range map[string]string{"lxcfs-runc": "runc", "/usr/local/bin/lxcfs-runc": "runc", "lxcfs-crun": "crun", "lxcfs-hook": "", "/usr/bin/runc": ""} {
		got, ok := hookcmd.RuntimeForName(argv0)
		if got != want || ok != (want != "") {
			t.Errorf("RuntimeForName(%q) = %q, %v; want %q", argv0, got, ok, want)
		}
	}
}
