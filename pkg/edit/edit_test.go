package edit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestObjectKeepsOrderAndValues(t *testing.T) {
	in := `{"z": 1, "a": {"keep":  [1, 2]}, "m": "x", "z": 2}`
	o, err := ParseObject([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	o.Set("m", []byte(`"y"`))
	o.Set("new", []byte(`true`))
	o.Delete("nothing")
	if got, want := string(o.Marshal()), `{"z":2,"a":{"keep":  [1, 2]},"m":"y","new":true}`; got != want {
		t.Errorf("Marshal = %s\nwant      %s", got, want)
	}
	o.Delete("a")
	if v, ok := o.Get("a"); ok || o.Len() != 3 {
		t.Errorf("after Delete: %s %v, len %d", v, ok, o.Len())
	}
	if !IsNull([]byte(" null ")) || IsNull([]byte(`"null"`)) {
		t.Error("IsNull")
	}
}

func TestParseObjectRejects(t *testing.T) {
	for _, in := range []string{``, `[]`, `"x"`, `{"a":1} {}`, `{"a":}`, `{1:2}`} {
		if _, err := ParseObject([]byte(in)); err == nil {
			t.Errorf("ParseObject(%q) accepted", in)
		}
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.json")
	os.WriteFile(p, []byte("old"), 0o600)
	if err := WriteAtomic(p, []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "new" || st.Mode().Perm() != 0o640 {
		t.Errorf("file = %q mode %v", b, st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := WriteAtomic(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
