package view

import (
	"testing"
	"time"
)

func BenchmarkMeminfo(b *testing.B) {
	host := fixture(b, "meminfo")
	m := Memory{Limit: 512 * miB, Usage: 100 * miB, Stat: baseStat, SwapAccounting: true, SwapLimit: giB}
	b.ReportAllocs()
	for b.Loop() {
		AppendMeminfo(nil, host, m)
	}
}

func BenchmarkStat(b *testing.B) {
	host := fixture(b, "stat-4cpu")
	cpus := []int{1, 2, 3}
	u := CPUUsage{Total: CPUTime{User: time.Hour, System: time.Minute}}
	b.ReportAllocs()
	for b.Loop() {
		AppendStat(nil, host, cpus, u)
	}
}

func BenchmarkCpuinfo(b *testing.B) {
	host := fixture(b, "cpuinfo-4cpu")
	cpus := []int{1, 3}
	b.ReportAllocs()
	for b.Loop() {
		AppendCpuinfo(nil, host, cpus)
	}
}

func BenchmarkDiskstats(b *testing.B) {
	host := fixture(b, "diskstats")
	b.ReportAllocs()
	for b.Loop() {
		AppendDiskstats(nil, host, testIO)
	}
}
