package rules

import (
	"encoding/json"
	"sync"
)

// cacheGeneration is the size of one generation of a Cache: a cache holds at most two
// generations (the recent and the previous one) of each kind.
const cacheGeneration = 512

// Cache memoises compiled programs and mappings by their source text, errors included, so
// that routing compiles a rule once rather than per event. It is bounded: entries not
// used for about cacheGeneration insertions are dropped. The zero value is ready to use
// and it is safe for concurrent use. Since keys are source texts, an edited rule simply
// misses the cache; nothing needs to be invalidated.
type Cache struct {
	mu       sync.Mutex
	programs generations[*Program]
	mappings generations[*Mapping]
}

// Program returns Compile(expression), compiling it at most once while cached.
func (c *Cache) Program(expression string) (*Program, error) {
	return lookupOrCompile(c, &c.programs, expression, Compile)
}

// Mapping returns CompileMapping(raw), compiling it at most once while cached.
func (c *Cache) Mapping(raw json.RawMessage) (*Mapping, error) {
	return lookupOrCompile(c, &c.mappings, string(raw), func(string) (*Mapping, error) {
		return CompileMapping(raw)
	})
}

func lookupOrCompile[T any](c *Cache, g *generations[T], key string, compile func(string) (T, error)) (T, error) {
	c.mu.Lock()
	e, ok := g.get(key)
	c.mu.Unlock()
	if ok {
		return e.val, e.err
	}
	// Compile outside the lock: two goroutines may compile the same source at once,
	// which is harmless, rather than everyone waiting on one slow compile.
	e.val, e.err = compile(key)
	c.mu.Lock()
	g.put(key, e)
	c.mu.Unlock()
	return e.val, e.err
}

type cacheEntry[T any] struct {
	val T
	err error
}

// generations is a two-generation cache: cheap, bounded and close enough to LRU.
type generations[T any] struct {
	cur, old map[string]cacheEntry[T]
}

func (g *generations[T]) get(key string) (cacheEntry[T], bool) {
	if e, ok := g.cur[key]; ok {
		return e, true
	}
	if e, ok := g.old[key]; ok {
		g.put(key, e) // promote, so entries in use survive the next rotation
		return e, true
	}
	return cacheEntry[T]{}, false
}

func (g *generations[T]) put(key string, e cacheEntry[T]) {
	if g.cur == nil || len(g.cur) >= cacheGeneration {
		g.old, g.cur = g.cur, make(map[string]cacheEntry[T])
	}
	g.cur[key] = e
}
