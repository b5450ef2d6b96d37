package view

import (
	"strconv"
	"time"
)

// Uptime renders /proc/uptime: seconds since the container's init started,
// and "idle" seconds, which for a container is that span minus the CPU time
// its cgroup used. Both are floored at 0: clocks sampled at slightly
// different moments must not produce negative uptimes.
func Uptime(sinceStart, cpuTime time.Duration) []byte {
	up := max(sinceStart, 0)
	idle := max(up-max(cpuTime, 0), 0)
	out := make([]byte, 0, 32)
	out = strconv.AppendFloat(out, up.Seconds(), 'f', 2, 64)
	out = append(out, ' ')
	out = strconv.AppendFloat(out, idle.Seconds(), 'f', 2, 64)
	return append(out, '\n')
}

// Loadavg renders /proc/loadavg ("%.2f %.2f %.2f %d/%d %d").
func Loadavg(l LoadAvg) []byte {
	out := make([]byte, 0, 48)
	out = strconv.AppendFloat(out, l.Load1, 'f', 2, 64)
	out = append(out, ' ')
	out = strconv.AppendFloat(out, l.Load5, 'f', 2, 64)
	out = append(out, ' ')
	out = strconv.AppendFloat(out, l.Load15, 'f', 2, 64)
	out = append(out, ' ')
	out = strconv.AppendInt(out, int64(l.Running), 10)
	out = append(out, '/')
	out = strconv.AppendInt(out, int64(l.Total), 10)
	out = append(out, ' ')
	out = strconv.AppendInt(out, int64(l.LastPid), 10)
	return append(out, '\n')
}
