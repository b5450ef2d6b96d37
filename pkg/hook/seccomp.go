package hook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/edit"
)

// SysinfoAnnotation opts a container in (true) or out (false) of sysinfo(2)
// answered by lxcfs-fused.
const SysinfoAnnotation = "io.lxcfs.sysinfo"

// SysinfoSocketName is the registration socket's name in lxcfs-fused's
// --state-dir.
const SysinfoSocketName = "sysinfo.sock"

// WantSysinfo says whether a served container's sysinfo goes to the
// listener: the annotation io.lxcfs.sysinfo decides when it is a boolean,
// else byDefault (the wrapper's sysinfo setting, inject's --sysinfo).
func WantSysinfo(annotations map[string]string, byDefault bool) bool {
	if v, ok := boolAnnotation(annotations, SysinfoAnnotation); ok {
		return v
	}
	return byDefault
}

// SysinfoListening checks that lxcfs-fused accepts registrations at sock,
// by connecting and closing at once (the daemon takes a connection that
// sends nothing as such a probe): a runtime fails a container whose
// listener it cannot reach, and a socket file left by a daemon that was
// killed is no listener. A unix connect does not wait for the daemon to
// accept; the short timeout only bounds a container's start if it ever
// did.
func SysinfoListening(sock string) error {
	c, err := net.DialTimeout("unix", sock, 250*time.Millisecond)
	if err != nil {
		return err
	}
	return c.Close()
}

const (
	actNotify = "SCMP_ACT_NOTIFY"
	sysinfo   = "sysinfo"
)

// SysinfoNotify edits a config.json (its bytes) so that the container's
// sysinfo calls go to the seccomp listener at listenerPath: it adds one
// rule, {"names":["sysinfo"],"action":"SCMP_ACT_NOTIFY"}, and
// linux.seccomp.listenerPath, and keeps the rest of the container's own
// profile. A config without a profile gets a minimal one that allows every
// other call. Where the profile already decides sysinfo otherwise, the
// config is left alone and reason says why: it has another listener (a
// filter has one), it denies sysinfo (a rule with another action, a rule
// with argument conditions, or a default action other than allow or log for
// a call it does not name). A rule that allows sysinfo among other calls
// loses sysinfo, since a call can have only one action.
func SysinfoNotify(config []byte, listenerPath string) (out []byte, changed bool, reason string, err error) {
	root, err := edit.ParseObject(config)
	if err != nil {
		return nil, false, "", err
	}
	if reason := foldedKey(root, "", "linux"); reason != "" {
		return config, false, reason, nil
	}
	linux := &edit.Object{}
	if raw, ok := root.Get("linux"); ok && !edit.IsNull(raw) {
		if linux, err = edit.ParseObject(raw); err != nil {
			return nil, false, "", fmt.Errorf("linux: %w", err)
		}
	}
	if reason := foldedKey(linux, "linux.", "seccomp"); reason != "" {
		return config, false, reason, nil
	}
	ours, _ := json.Marshal(map[string]any{"names": []string{sysinfo}, "action": actNotify})
	listener, _ := json.Marshal(listenerPath)
	raw, ok := linux.Get("seccomp")
	if !ok || edit.IsNull(raw) {
		sc := &edit.Object{}
		sc.Set("defaultAction", json.RawMessage(`"SCMP_ACT_ALLOW"`))
		sc.Set("listenerPath", listener)
		sc.Set("syscalls", json.RawMessage("["+string(ours)+"]"))
		linux.Set("seccomp", sc.Marshal())
		root.Set("linux", linux.Marshal())
		return indent(root), true, "no seccomp profile: a minimal one added", nil
	}
	sc, err := edit.ParseObject(raw)
	if err != nil {
		return nil, false, "", fmt.Errorf("linux.seccomp: %w", err)
	}
	if reason := foldedKey(sc, "linux.seccomp.", "defaultAction", "listenerPath", "syscalls"); reason != "" {
		return config, false, reason, nil
	}
	var prof struct {
		DefaultAction string `json:"defaultAction"`
		ListenerPath  string `json:"listenerPath"`
	}
	if err := json.Unmarshal(raw, &prof); err != nil {
		return nil, false, "", fmt.Errorf("linux.seccomp: %w", err)
	}
	var rules []json.RawMessage
	if r, ok := sc.Get("syscalls"); ok && !edit.IsNull(r) {
		if err := json.Unmarshal(r, &rules); err != nil {
			return nil, false, "", fmt.Errorf("linux.seccomp.syscalls: %w", err)
		}
	}
	if prof.ListenerPath != "" && prof.ListenerPath != listenerPath {
		return config, false, fmt.Sprintf("the profile already has a listener (%s)", prof.ListenerPath), nil
	}
	kept := make([]json.RawMessage, 0, len(rules)+1)
	mentioned := false
	for i, r := range rules {
		var rule struct {
			Names  []string          `json:"names"`
			Action string            `json:"action"`
			Args   []json.RawMessage `json:"args"`
		}
		if err := json.Unmarshal(r, &rule); err != nil {
			return nil, false, "", fmt.Errorf("linux.seccomp.syscalls[%d]: %w", i, err)
		}
		if !slices.Contains(rule.Names, sysinfo) {
			kept = append(kept, r)
			continue
		}
		switch {
		case rule.Action == actNotify && len(rule.Args) == 0 && prof.ListenerPath == listenerPath:
			return config, false, "sysinfo is already sent to the listener", nil
		case len(rule.Args) > 0 || (rule.Action != "SCMP_ACT_ALLOW" && rule.Action != "SCMP_ACT_LOG"):
			return config, false, fmt.Sprintf("the profile decides sysinfo itself (%s)", rule.Action), nil
		}
		mentioned = true
		names := slices.DeleteFunc(slices.Clone(rule.Names), func(n string) bool { return n == sysinfo })
		if len(names) == 0 {
			continue
		}
		obj, err := edit.ParseObject(r)
		if err != nil {
			return nil, false, "", fmt.Errorf("linux.seccomp.syscalls[%d]: %w", i, err)
		}
		nb, _ := json.Marshal(names)
		obj.Set("names", nb)
		kept = append(kept, obj.Marshal())
	}
	if !mentioned && prof.DefaultAction != "SCMP_ACT_ALLOW" && prof.DefaultAction != "SCMP_ACT_LOG" {
		return config, false, fmt.Sprintf("the profile denies sysinfo (default action %s)", prof.DefaultAction), nil
	}
	kept = append(kept, ours)
	list, err := json.Marshal(kept)
	if err != nil {
		return nil, false, "", err
	}
	sc.Set("listenerPath", listener)
	sc.Set("syscalls", list)
	linux.Set("seccomp", sc.Marshal())
	root.Set("linux", linux.Marshal())
	return indent(root), true, "sysinfo rule added to the container's profile", nil
}

func indent(root *edit.Object) []byte {
	var pretty bytes.Buffer
	json.Indent(&pretty, root.Marshal(), "", "\t") // it was parsed: it is valid
	pretty.WriteByte('\n')
	return pretty.Bytes()
}

// InjectSysinfo applies SysinfoNotify to the config.json at configPath,
// replacing it atomically with its mode kept.
func InjectSysinfo(configPath, listenerPath string) (changed bool, reason string, err error) {
	data, err := readCapped(configPath, MaxConfigSize)
	if err != nil {
		return false, "", err
	}
	fi, err := os.Stat(configPath)
	if err != nil {
		return false, "", fmt.Errorf("stat %s: %w", configPath, err)
	}
	out, changed, reason, err := SysinfoNotify(data, listenerPath)
	if err != nil {
		return false, "", fmt.Errorf("parse %s: %w", configPath, err)
	}
	if !changed {
		return false, reason, nil
	}
	return true, reason, edit.WriteAtomic(configPath, out, fi.Mode().Perm())
}

// foldedKey explains why a config is left alone when obj spells one of keys
// in another case: runc reads such a key as the same field, so an edit of
// the exact key could be overridden by it, or override it.
func foldedKey(obj *edit.Object, prefix string, keys ...string) string {
	for _, k := range keys {
		if other, ok := obj.Folded(k); ok {
			return fmt.Sprintf("config.json has %s%s, which runc reads as %s%s: not editing a profile whose meaning depends on the case of its keys", prefix, other, prefix, k)
		}
	}
	return ""
}
