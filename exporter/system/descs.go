package system

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "node"

// descCache keeps the descriptors of metric families whose names come from
// the data (sockstat protocols). Building a
// Desc validates and hashes its name, so reusing them across scrapes keeps
// the per-scrape CPU cost down. The set is bounded by what the kernel
// reports, so the cache does not grow without limit.
type descCache struct {
	mu    sync.Mutex
	descs map[string]*prometheus.Desc
}

func newDescCache() *descCache {
	return &descCache{descs: map[string]*prometheus.Desc{}}
}

// get returns the descriptor of an unlabelled metric called fqName, creating
// it with help on first use.
func (c *descCache) get(fqName, help string) *prometheus.Desc {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.descs[fqName]
	if !ok {
		d = prometheus.NewDesc(fqName, help, nil, nil)
		c.descs[fqName] = d
	}
	return d
}
