// Package expiring keeps values for a limited time: the one cache type of
// the daemon (cgroup limits and memory.stat, ancestors' limit files, host
// files, the host's online CPUs).
//
// A value is handed out again while it is younger than the caller's max
// age and loaded afresh after that. Failed loads are not kept, so a vanished
// cgroup keeps reporting itself on every call; a cache that should keep an
// outcome such as "not there" makes it part of the value.
package expiring

import (
	"sync"
	"time"
)

// Cache maps keys to values loaded at some time. The zero value is ready to
// use and safe for concurrent use. A cache of one value has the key type
// struct{}.
type Cache[K comparable, V any] struct {
	mu    sync.Mutex
	m     map[K]entry[V]
	swept time.Time
}

type entry[V any] struct {
	v  V
	at time.Time
}

// Get returns key's value while it is younger than maxAge at now; else it
// calls load and keeps what it returns, unless that is an error. maxAge <= 0
// loads every time and keeps nothing. Loads run without the lock held: two
// callers may both load, and the newer load is kept. Values older than
// maxAge, which no Get with that max age would hand out, are dropped at
// most once per maxAge, so a cache keyed by the paths of containers that
// come and go does not grow with every path it ever saw.
func (c *Cache[K, V]) Get(key K, now time.Time, maxAge time.Duration, load func() (V, error)) (V, error) {
	if maxAge <= 0 {
		return load()
	}
	c.mu.Lock()
	if e, ok := c.m[key]; ok && now.Sub(e.at) < maxAge {
		c.mu.Unlock()
		return e.v, nil
	}
	c.mu.Unlock()
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[K]entry[V]{}
	}
	if old, ok := c.m[key]; !ok || !now.Before(old.at) {
		c.m[key] = entry[V]{v: v, at: now}
	}
	if len(c.m) > 1 && now.Sub(c.swept) >= maxAge {
		c.swept = now
		for k, e := range c.m {
			if now.Sub(e.at) >= maxAge {
				delete(c.m, k)
			}
		}
	}
	return v, nil
}

// Reset forgets every value.
func (c *Cache[K, V]) Reset() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

// Len reports how many values are kept.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
