package jobs

import "sync"

// slots counts in-flight attempts per connection in this process.
type slots struct {
	mu    sync.Mutex
	max   int
	inUse map[string]int
}

func newSlots(max int) *slots { return &slots{max: max, inUse: map[string]int{}} }

// acquire takes a slot for key, or reports false when all are taken.
func (s *slots) acquire(key string) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inUse[key] >= s.max {
		return nil, false
	}
	s.inUse[key]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.inUse[key]--; s.inUse[key] <= 0 {
			delete(s.inUse, key)
		}
	}, true
}
