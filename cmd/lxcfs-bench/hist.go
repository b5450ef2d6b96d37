package main

import (
	"math/bits"
	"sort"
	"time"
)

// hist is a latency histogram with about 1% resolution: each power of two
// of nanoseconds is split into subBuckets linear buckets. Readers keep one
// and send it to the driver, which merges them, so percentiles come from
// every read rather than from per-process summaries.
type hist struct {
	counts map[int]uint64
	n      uint64
}

const subBits = 7 // 128 buckets per power of two: under 1% error

func newHist() *hist { return &hist{counts: map[int]uint64{}} }

func bucketOf(d time.Duration) int {
	v := uint64(max(d, 1))
	e := bits.Len64(v) // 1..64
	if e <= subBits {
		return int(v)
	}
	shift := e - subBits - 1
	return (e-subBits)<<subBits | int((v>>shift)&(1<<subBits-1))
}

// lowOf is the smallest duration that falls in bucket b; percentiles report
// the bucket's middle.
func lowOf(b int) time.Duration {
	if b < 1<<subBits {
		return time.Duration(b)
	}
	e := b>>subBits + subBits
	shift := e - subBits - 1
	return time.Duration((uint64(1)<<(e-1) | uint64(b&(1<<subBits-1))<<shift))
}

func (h *hist) add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for b, c := range o.counts {
		h.counts[b] += c
	}
	h.n += o.n
}

// quantile returns the q-quantile (0..1), nearest rank.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	keys := make([]int, 0, len(h.counts))
	for b := range h.counts {
		keys = append(keys, b)
	}
	sort.Ints(keys)
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for _, b := range keys {
		seen += h.counts[b]
		if seen >= rank {
			lo, hi := lowOf(b), lowOf(b+1)
			return lo + (hi-lo)/2
		}
	}
	return lowOf(keys[len(keys)-1])
}

// wire is a histogram as it travels over a reader's stdout.
type wire [][2]uint64

func (h *hist) wire() wire {
	out := make(wire, 0, len(h.counts))
	for b, c := range h.counts {
		out = append(out, [2]uint64{uint64(b), c})
	}
	return out
}

func fromWire(w wire) *hist {
	h := newHist()
	for _, bc := range w {
		h.counts[int(bc[0])] += bc[1]
		h.n += bc[1]
	}
	return h
}
