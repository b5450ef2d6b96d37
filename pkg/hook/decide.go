package hook

import (
	"fmt"
	"strconv"
	"strings"
)

// Annotations read by the hook.
const (
	// AnnotationEnabled opts a container in ("true") or out ("false").
	AnnotationEnabled = "io.lxcfs.enabled"
	// AnnotationPouchEnabled is PouchContainer's CRI annotation, honoured so
	// pods written for it keep working.
	AnnotationPouchEnabled = "io.kubernetes.lxcfs.enabled"
	// AnnotationRequired ("true") makes the hook fail the container when the
	// views are not being served, instead of starting it with host views.
	AnnotationRequired = "io.lxcfs.required"
)

// Mode says how the hook was configured.
type Mode int

const (
	// ModeOptIn: the hook is installed for every container (hooks.d drop-in
	// with an always condition, or a runtime wrapper): only containers whose
	// annotations opt in are served.
	ModeOptIn Mode = iota
	// ModeAlways: the hook was put in this container's config.json on
	// purpose (lxcfs-hook inject, or --always): serve unless the annotations
	// opt out.
	ModeAlways
)

// Decision is what the hook does for one container.
type Decision struct {
	Serve bool
	// Required: when the views are not served, fail the container rather
	// than start it with host views.
	Required bool
	// Reason explains Serve for the log.
	Reason string
}

// Decide applies the opt-in rules to a container's annotations. failClosed is
// the --fail-closed flag; the io.lxcfs.required annotation can only turn it on
// (a container cannot weaken the admin's policy).
func Decide(annotations map[string]string, mode Mode, failClosed bool) Decision {
	d := Decision{Required: failClosed}
	if v, ok := boolAnnotation(annotations, AnnotationRequired); ok && v {
		d.Required = true
	}
	enabled, set, key := false, false, ""
	// io.lxcfs.enabled wins over the PouchContainer spelling when both are set.
	for _, k := range []string{AnnotationEnabled, AnnotationPouchEnabled} {
		if v, ok := boolAnnotation(annotations, k); ok {
			enabled, set, key = v, true, k
			break
		}
	}
	switch {
	case set && enabled:
		d.Serve, d.Reason = true, fmt.Sprintf("annotation %s=true", key)
	case set && !enabled:
		d.Serve, d.Reason = false, fmt.Sprintf("annotation %s=false opts the container out", key)
	case mode == ModeAlways:
		d.Serve, d.Reason = true, "hook configured to always apply (--always) and no annotation opts out"
	default:
		d.Serve, d.Reason = false, fmt.Sprintf("not opted in: set annotation %s=true (or run the hook with --always)", AnnotationEnabled)
	}
	if !d.Serve {
		// An opted-out container has nothing to require.
		d.Required = false
	}
	return d
}

// boolAnnotation reads a boolean annotation. Values other than a boolean
// count as absent, so a typo neither enables nor disables.
func boolAnnotation(annotations map[string]string, key string) (value, ok bool) {
	raw, present := annotations[key]
	if !present {
		return false, false
	}
	v, err := strconv.ParseBool(strings.TrimSpace(raw))
	if err != nil {
		return false, false
	}
	return v, true
}
