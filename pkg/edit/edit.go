// Package edit changes configuration files that belong to someone else
// (config.json of a bundle, Docker's daemon.json) without disturbing what it
// does not change: JSON objects keep their keys in order and their values
// byte for byte, and files are replaced atomically.
package edit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
)

// Object is a JSON object that keeps its keys in order and its values as
// they were, so editing one key leaves the rest of the file alone.
type Object struct {
	keys   []string
	values map[string]json.RawMessage
}

// ParseObject reads one JSON object; anything else (an array, trailing
// data) is an error.
func ParseObject(data []byte) (*Object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	o := &Object{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v where a key was expected", tok)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		// A duplicate key keeps its first place and, as encoding/json
		// does, its last value.
		o.Set(key, raw)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after the JSON object")
	}
	return o, nil
}

// Get returns a key's raw value.
func (o *Object) Get(key string) (json.RawMessage, bool) {
	v, ok := o.values[key]
	return v, ok
}

// Set replaces a key's value in place, or appends the key.
func (o *Object) Set(key string, v json.RawMessage) {
	if o.values == nil {
		o.values = map[string]json.RawMessage{}
	}
	if _, ok := o.values[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.values[key] = v
}

// Delete removes a key.
func (o *Object) Delete(key string) {
	if _, ok := o.values[key]; !ok {
		return
	}
	delete(o.values, key)
	for i, k := range o.keys {
		if k == key {
			o.keys = append(o.keys[:i], o.keys[i+1:]...)
			break
		}
	}
}

// Folded returns a key that differs from key only in case. encoding/json,
// which runc and the engines decode with, matches keys regardless of case,
// so such a key means the same field to them as key does to us.
func (o *Object) Folded(key string) (string, bool) {
	for _, k := range o.keys {
		if k != key && strings.EqualFold(k, key) {
			return k, true
		}
	}
	return "", false
}

// Len is the number of keys.
func (o *Object) Len() int { return len(o.keys) }

// Marshal writes the object compactly, keys in order.
func (o *Object) Marshal() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k) // a string always marshals
		b.Write(kb)
		b.WriteByte(':')
		b.Write(o.values[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// IsNull says whether a raw value is JSON null.
func IsNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// WriteAtomic replaces path with data through a synced temporary file in the
// same directory, so a reader (a runtime reading config.json, an engine its
// configuration) never sees half a file. The daemon writes a record with it
// at every container start: plain system calls (an *os.File adds four
// fcntl and a poller registration, and os.Rename a stat).
func WriteAtomic(path string, data []byte, mode fs.FileMode) error {
	dir, base := filepath.Split(path)
	var fd int
	var tmp string
	for tries := 0; ; tries++ {
		tmp = filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(uint64(rand.Uint32()), 10))
		var err error
		fd, err = linux.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || tries == 100 {
			return fmt.Errorf("write %s: %w", path, &fs.PathError{Op: "create", Path: tmp, Err: err})
		}
	}
	err := writeSynced(fd, data, mode)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err == nil {
		if err = unix.Rename(tmp, path); err != nil {
			err = fmt.Errorf("replace %s: %w", path, err)
		}
	} else {
		err = fmt.Errorf("write %s: %w", tmp, err)
	}
	if err != nil {
		unix.Unlink(tmp)
	}
	return err
}

// writeSynced writes all of data to fd, gives it mode and syncs it. The
// file was created 0600, whatever the umask: the daemon's records, written
// at every container start, need no chmod.
func writeSynced(fd int, data []byte, mode fs.FileMode) error {
	for len(data) > 0 {
		n, err := linux.Write(fd, data)
		if err != nil {
			return err
		}
		data = data[n:]
	}
	if mode.Perm() != 0o600 {
		if err := unix.Fchmod(fd, uint32(mode.Perm())); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	return unix.Fsync(fd)
}
