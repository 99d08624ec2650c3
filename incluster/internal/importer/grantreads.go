package importer

import (
	"sync"
	"time"
)

// grantReadTTL is how long what the importer read of a grant in B answers again. Every
// TokenRequest is preceded by two reads in B, of the service account (its allowed-importers
// annotation) and of its namespace's token policies (ConfigMap grant.PoliciesName), and many
// imports share them: the policies of a namespace serve every import of a service account of it,
// a service account every import of it. A few seconds spare nearly all of these reads in bulk
// (an importer creating or refreshing many imports at once) and none that matters for
// revocation:
//   - a disallowed, revoked or narrowed grant is enforced by B itself (the anchor, the token
//     policy's admission), whatever the importer read: such a refusal, like every failure,
//     drops the entries the refresh used, so the retry reads B again;
//   - a narrowed allowed-importers annotation, which only the importer enforces, is honoured
//     within grantReadTTL; tokens issued before it stay valid until refreshed, as ever.
const grantReadTTL = 2 * time.Second

// grantReads caches reads of grants in one remote cluster for grantReadTTL. It keeps only what
// the importer uses (an annotation's value, the policies' data), and only successful reads.
// The zero value is ready to use.
type grantReads struct {
	mu        sync.Mutex
	entries   map[grantReadKey]grantRead
	lastSweep time.Time
}

type grantReadKey struct{ kind, namespace, name string }

type grantRead struct {
	at    time.Time
	value any
}

// Kinds of grant reads.
const (
	readServiceAccount = "serviceaccount"
	readPolicies       = "policies"
)

// get returns the value read for key less than grantReadTTL before now, or reads it.
func (g *grantReads) get(key grantReadKey, now time.Time, read func() (any, error)) (any, error) {
	g.mu.Lock()
	e, ok := g.entries[key]
	g.mu.Unlock()
	if ok && fresh(e.at, now) {
		return e.value, nil
	}
	v, err := read()
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.entries == nil {
		g.entries = map[grantReadKey]grantRead{}
	}
	g.entries[key] = grantRead{at: now, value: v}
	// Expired entries go at most once per TTL, so that the map holds only the grants read
	// recently, however many service accounts are imported.
	if !fresh(g.lastSweep, now) {
		for k, e := range g.entries {
			if !fresh(e.at, now) {
				delete(g.entries, k)
			}
		}
		g.lastSweep = now
	}
	return v, nil
}

// forget drops keys, so that they are read again.
func (g *grantReads) forget(keys ...grantReadKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range keys {
		delete(g.entries, k)
	}
}

// fresh tells whether a read at at still answers at now (a clock moved back does not extend it).
func fresh(at, now time.Time) bool {
	return !now.Before(at) && now.Sub(at) < grantReadTTL
}
