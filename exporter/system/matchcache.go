package system

import (
	"regexp"
	"sync"
)

// matchCache remembers a regexp's verdict on the strings seen in the
// previous scrape (mount points, fs types): the set
// hardly changes between scrapes, and matching hundreds of names against
// node_exporter's long default patterns every time was the collectors'
// largest CPU cost. Only names seen in the latest scrape are kept, so
// churning names (container overlay mounts) cannot grow it without bound.
type matchCache[K comparable] struct {
	matches func(K) bool

	mu   sync.Mutex
	prev map[K]bool
	cur  map[K]bool
}

// newMatchCache caches re over strings.
func newMatchCache(re *regexp.Regexp) *matchCache[string] {
	return &matchCache[string]{matches: re.MatchString, prev: map[string]bool{}}
}

// begin starts a scrape's use of the cache; end must follow.
func (m *matchCache[K]) begin() {
	m.mu.Lock()
	m.cur = make(map[K]bool, len(m.prev))
}

func (m *matchCache[K]) match(key K) bool {
	v, ok := m.cur[key]
	if ok {
		return v
	}
	v, ok = m.prev[key]
	if !ok {
		v = m.matches(key)
	}
	m.cur[key] = v
	return v
}

func (m *matchCache[K]) end() {
	m.prev, m.cur = m.cur, nil
	m.mu.Unlock()
}
