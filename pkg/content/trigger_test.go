package content

import "testing"

func TestTriggerAllowed(t *testing.T) {
	for _, tt := range []struct {
		spec       string
		privileged bool
		want       bool
	}{
		{"some 150000 1000000", true, true},
		{"some 150000 1000000", false, false},
		{"some 150000 2000000", false, true},
		{"full 500000 4000000\x00", false, true},
		{"full 500000 3000000\x00", false, false},
		{"garbage", false, true}, // the kernel refuses it
		{"some x y", false, true},
	} {
		if got := TriggerAllowed([]byte(tt.spec), tt.privileged); got != tt.want {
			t.Errorf("TriggerAllowed(%q, privileged %v) = %v, want %v", tt.spec, tt.privileged, got, tt.want)
		}
	}
}
