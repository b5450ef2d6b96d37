package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxStateSize caps the state read from stdin. A real state is a few hundred
// bytes plus annotations; the cap keeps a broken caller from making a
// short-lived hook allocate without bound.
const MaxStateSize = 1 << 20

// State is the part of the OCI runtime state a hook needs. It is decoded
// leniently: crun reports `status: created` and `ociVersion: 1.0` at
// createRuntime and adds fields such as `root`; none of those matter here, and
// unknown fields are ignored.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ParseState reads the OCI state JSON a runtime writes on a hook's stdin.
func ParseState(r io.Reader) (*State, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("read OCI state from stdin: %w", err)
	}
	if len(data) > MaxStateSize {
		return nil, fmt.Errorf("OCI state on stdin is larger than %d bytes: is the hook called by an OCI runtime?", MaxStateSize)
	}
	if len(data) == 0 {
		return nil, errors.New("no OCI state on stdin: lxcfs-hook create-runtime must be run by an OCI runtime as a createRuntime hook")
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse OCI state from stdin: %w", err)
	}
	var missing []string
	if s.ID == "" {
		missing = append(missing, `"id"`)
	}
	if s.Bundle == "" {
		missing = append(missing, `"bundle"`)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("OCI state lacks %s: is the hook called at the createRuntime stage?", join(missing))
	}
	if s.Pid <= 0 {
		// crun sends pid 0 at createContainer: the hook needs the host pid
		// the runtimes give only at createRuntime (or prestart).
		return nil, fmt.Errorf("OCI state of container %s has no \"pid\" (got %d): configure lxcfs-hook at the createRuntime stage, where the runtime gives the container's host pid", s.ID, s.Pid)
	}
	return &s, nil
}

func join(s []string) string {
	out := ""
	for i, v := range s {
		switch {
		case i == 0:
		case i == len(s)-1:
			out += " and "
		default:
			out += ", "
		}
		out += v
	}
	return out
}
