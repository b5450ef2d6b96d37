package configure

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const wrapperPath = "/usr/local/bin/lxcfs-runc"

// golden compares got with testdata/NAME, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("differs from %s:\n%s", path, Diff(path, "got", want, got))
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDocker(t *testing.T) {
	add := DockerOptions{Path: wrapperPath}
	tests := []struct {
		in      string
		name    string
		opts    DockerOptions
		golden  string // "" when unchanged or an error
		wantErr string
	}{
		{in: "empty.json", name: "add", opts: add, golden: "empty.add.json"},
		{in: "existing.json", name: "add", opts: add, golden: "existing.add.json"},
		{in: "existing.json", name: "default", opts: DockerOptions{Path: wrapperPath, SetDefault: true}, golden: "existing.default.json"},
		{in: "existing.json", name: "other name", opts: DockerOptions{Name: "lxcfs-crun", Path: "/usr/local/bin/lxcfs-crun"}, golden: "existing.crun.json"},
		{in: "existing.json", name: "remove absent", opts: DockerOptions{Remove: true}},
		{in: "configured.json", name: "new path keeps runtimeArgs", opts: DockerOptions{Path: "/usr/bin/lxcfs-runc"}, golden: "configured.path.json"},
		{in: "configured.json", name: "again", opts: DockerOptions{Path: wrapperPath, SetDefault: true}},
		{in: "configured.json", name: "remove", opts: DockerOptions{Remove: true}, golden: "configured.remove.json"},
		{in: "compact.json", name: "same content, other layout", opts: add},
		{in: "bad-runtimes.json", name: "add", opts: add, wantErr: `"runtimes": not a JSON object`},
		{in: "bad-default.json", name: "add", opts: add, wantErr: `"default-runtime" is not a string`},
		{in: "array.json", name: "add", opts: add, wantErr: "not a JSON object"},
		{in: "trailing.json", name: "add", opts: add, wantErr: "trailing data"},
		{in: "empty.json", name: "bad name", opts: DockerOptions{Name: "lx cfs", Path: wrapperPath}, wantErr: `runtime name "lx cfs"`},
		{in: "empty.json", name: "no path", opts: DockerOptions{}, wantErr: "no runtime path"},
	}
	for _, tt := range tests {
		t.Run(tt.in+"/"+tt.name, func(t *testing.T) {
			edit := func(b []byte) ([]byte, bool, error) { return Docker(b, tt.opts) }
			checkEdit(t, "docker", tt.in, tt.golden, tt.wantErr, edit)
		})
	}
}

// checkEdit runs edit on testdata/DIR/IN and checks it: the error when
// wantErr is set; otherwise changed exactly when a golden file is named, the
// bytes untouched when unchanged, the golden output, and a second run
// changing nothing. It returns the input and, when changed, the output.
func checkEdit(t *testing.T, dir, in, goldenName, wantErr string, edit func([]byte) ([]byte, bool, error)) (src, out []byte) {
	t.Helper()
	src = read(t, dir+"/"+in)
	out, changed, err := edit(src)
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want %q", err, wantErr)
		}
		return src, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if changed != (goldenName != "") {
		t.Fatalf("changed = %v, want %v:\n%s", changed, goldenName != "", out)
	}
	if !changed {
		if !bytes.Equal(out, src) {
			t.Errorf("unchanged but the bytes differ:\n%s", out)
		}
		return src, nil
	}
	golden(t, dir+"/"+goldenName, out)
	// Running it again changes nothing.
	if again, changed, err := edit(out); err != nil || changed || !bytes.Equal(again, out) {
		t.Errorf("second run: changed=%v err=%v", changed, err)
	}
	return src, out
}

func TestContainerd(t *testing.T) {
	add := ContainerdOptions{BinaryName: wrapperPath}
	tests := []struct {
		in      string
		name    string
		opts    ContainerdOptions
		golden  string
		wantErr string
	}{
		{in: "debian-default.toml", name: "add", opts: add, golden: "debian-default.add.toml"},
		{in: "empty.toml", name: "add", opts: add, golden: "empty.add.toml"},
		{in: "v1.toml", name: "add", opts: add, golden: "v1.add.toml"},
		{in: "v3.toml", name: "add", opts: add, golden: "v3.add.toml"},
		{in: "systemd.toml", name: "add", opts: add, golden: "systemd.add.toml"},
		{in: "block-old-path.toml", name: "update", opts: add, golden: "block-old-path.update.toml"},
		{in: "block-old-path.toml", name: "remove", opts: ContainerdOptions{Remove: true}, golden: "block-old-path.remove.toml"},
		{in: "debian-default.toml", name: "remove absent", opts: ContainerdOptions{Remove: true}},
		{in: "by-hand-same.toml", name: "add", opts: add},
		{in: "by-hand-other.toml", name: "add", opts: add, wantErr: "already defined, by hand"},
		{in: "by-hand-other.toml", name: "remove", opts: ContainerdOptions{Remove: true}, wantErr: "remove its tables by hand"},
		{in: "inline.toml", name: "add", opts: add, wantErr: "inline table"},
		{in: "bad-version.toml", name: "add", opts: add, wantErr: "want 1, 2 or 3"},
		{in: "broken.toml", name: "add", opts: add, wantErr: "config.toml:"},
		{in: "block-unterminated.toml", name: "add", opts: add, wantErr: "without"},
		{in: "empty.toml", name: "bad name", opts: ContainerdOptions{Name: "a]b", BinaryName: wrapperPath}, wantErr: "runtime name"},
	}
	for _, tt := range tests {
		t.Run(tt.in+"/"+tt.name, func(t *testing.T) {
			in, out := checkEdit(t, "containerd", tt.in, tt.golden, tt.wantErr, func(b []byte) ([]byte, bool, error) { return Containerd(b, tt.opts) })
			if out == nil {
				return
			}
			var doc map[string]any
			if err := toml.Unmarshal(out, &doc); err != nil {
				t.Fatalf("result does not parse: %v", err)
			}
			if !tt.opts.Remove {
				// Adding then removing gives back the file as it was, but
				// for a version line written into an empty file.
				back, _, err := Containerd(out, ContainerdOptions{Remove: true})
				if err != nil {
					t.Fatal(err)
				}
				if want := in; tt.in != "empty.toml" && tt.in != "block-old-path.toml" && !bytes.Equal(back, want) {
					t.Errorf("add then remove:\n%s", Diff("before", "after", want, back))
				}
			}
		})
	}
}

func TestHooksFileMatchesSourceTree(t *testing.T) {
	for file, always := range map[string]bool{"lxcfs.json": false, "lxcfs-always.json.example": true} {
		want, err := os.ReadFile(filepath.Join("..", "..", "hooks.d", file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := HooksFile("/usr/local/bin/lxcfs-hook", always)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("HooksFile(always=%v) differs from hooks.d/%s:\n%s", always, file, Diff(file, "HooksFile", want, got))
		}
	}
	got, err := HooksFile(`/opt/lxcfs "oci"/lxcfs-hook`, false)
	if err != nil || !strings.Contains(string(got), `"path": "/opt/lxcfs \"oci\"/lxcfs-hook"`) {
		t.Errorf("path not quoted: %v\n%s", err, got)
	}
	if _, err := HooksFile("lxcfs-hook", false); err == nil {
		t.Error("relative hook path accepted")
	}
}

func TestDiff(t *testing.T) {
	tests := []struct{ name, a, b, want string }{
		{"same", "a\nb\n", "a\nb\n", "--- A\n+++ B\n"},
		{"from nothing", "", "x\ny\n", "--- A\n+++ B\n@@ -0,0 +1,2 @@\n+x\n+y\n"},
		{"middle", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\nfive\n6\n7\n8\n9\n", "--- A\n+++ B\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"},
		{"two hunks", "a\n1\n2\n3\n4\n5\n6\n7\n8\nb\n", "A\n1\n2\n3\n4\n5\n6\n7\n8\nB\n", "--- A\n+++ B\n@@ -1,4 +1,4 @@\n-a\n+A\n 1\n 2\n 3\n@@ -7,4 +7,4 @@\n 6\n 7\n 8\n-b\n+B\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Diff("A", "B", []byte(tt.a), []byte(tt.b)); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
