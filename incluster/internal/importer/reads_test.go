package importer

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// TestGrantReads: a grant read answers again for grantReadTTL, never after, nor once forgotten;
// failures are not kept.
func TestGrantReads(t *testing.T) {
	key := grantReadKey{readPolicies, "team", "mcsa-grants"}
	tests := []struct {
		name string
		// between runs after the first read.
		between   func(g *grantReads, now time.Time) time.Time
		firstErr  error
		wantReads int
	}{
		{name: "within the window", between: func(_ *grantReads, now time.Time) time.Time { return now.Add(grantReadTTL - time.Millisecond) }, wantReads: 1},
		{name: "after the window", between: func(_ *grantReads, now time.Time) time.Time { return now.Add(grantReadTTL) }, wantReads: 2},
		{name: "clock moved back", between: func(_ *grantReads, now time.Time) time.Time { return now.Add(-time.Second) }, wantReads: 2},
		{name: "forgotten", between: func(g *grantReads, now time.Time) time.Time { g.forget(key); return now }, wantReads: 2},
		{name: "failure not kept", firstErr: errors.New("unreachable"), between: func(_ *grantReads, now time.Time) time.Time { return now }, wantReads: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g grantReads
			reads := 0
			read := func() (any, error) {
				reads++
				if reads == 1 && tt.firstErr != nil {
					return nil, tt.firstErr
				}
				return reads, nil
			}
			if _, err := g.get(key, t0, read); !errors.Is(err, tt.firstErr) {
				t.Fatalf("first read: %v, want %v", err, tt.firstErr)
			}
			v, err := g.get(key, tt.between(&g, t0), read)
			if err != nil || reads != tt.wantReads || v != tt.wantReads {
				t.Fatalf("second get = %v, %v after %d reads, want the value of read %d", v, err, reads, tt.wantReads)
			}
		})
	}
}

// TestGrantReadsSweep: entries past the window are dropped, so that the cache holds only the
// grants read recently.
func TestGrantReadsSweep(t *testing.T) {
	var g grantReads
	read := func() (any, error) { return true, nil }
	for _, name := range []string{"a", "b", "c"} {
		if _, err := g.get(grantReadKey{readServiceAccount, "team", name}, t0, read); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.get(grantReadKey{readServiceAccount, "team", "d"}, t0.Add(2*grantReadTTL), read); err != nil {
		t.Fatal(err)
	}
	if len(g.entries) != 1 {
		t.Fatalf("%d entries after the window, want 1", len(g.entries))
	}
}

// staleCache answers for the import under test with a copy taken earlier: a cache lagging behind
// the importer's own writes.
type staleCache struct {
	metadataCache
	imp *v1alpha1.ServiceAccountImport
}

func (c staleCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if imp, ok := obj.(*v1alpha1.ServiceAccountImport); ok && key == client.ObjectKeyFromObject(c.imp) {
		c.imp.DeepCopyInto(imp)
		return nil
	}
	return c.metadataCache.Get(ctx, key, obj, opts...)
}

// TestReadsAroundTheCache: the importer decides to mint from the cache when the cache holds its
// own last writes, or the import is new; otherwise it reads the import and its secret from the
// API server first, and a cache lagging behind its writes never makes it mint twice.
func TestReadsAroundTheCache(t *testing.T) {
	tests := []struct {
		name string
		// before the reconcile under test, after the first (which issues a token).
		before         func(f *fixture)
		wantAPIReads   int
		wantTokens     int
		wantRemoteGets int
	}{{
		name: "new import",
		// Its secret's name, which someone else's secret (unlabelled, not cached) may hold.
		wantAPIReads: 1, wantTokens: 1, wantRemoteGets: 2,
	}, {
		name: "refresh on schedule, cache holding this process's writes",
		before: func(f *fixture) {
			f.clock.Step(time.Hour)
		},
		wantAPIReads: 0, wantTokens: 2, wantRemoteGets: 4,
	}, {
		name: "refresh on schedule after a restart",
		before: func(f *fixture) {
			f.restart()
			f.clock.Step(time.Hour)
		},
		wantAPIReads: 2, wantTokens: 2, wantRemoteGets: 4,
	}, {
		name: "cache behind the status write: not due after all",
		before: func(f *fixture) {
			stale := f.get()
			stale.ResourceVersion = "1"
			stale.Status = v1alpha1.ServiceAccountImportStatus{}
			f.r.client = staleCache{metadataCache{f.local}, stale}
			f.clock.Step(time.Minute)
		},
		wantAPIReads: 2, wantTokens: 1, wantRemoteGets: 4,
	}, {
		name: "secret deleted",
		before: func(f *fixture) {
			if err := f.local.Delete(context.Background(), f.secret()); err != nil {
				f.t.Fatal(err)
			}
			f.clock.Step(time.Minute)
		},
		wantAPIReads: 2, wantTokens: 2, wantRemoteGets: 4,
	}, {
		name: "grant read again within the window: answered",
		before: func(f *fixture) {
			f.clock.Step(time.Millisecond)
			f.requestRefresh("now")
		},
		// The request changed the import: read around the cache. B's reads are kept.
		wantAPIReads: 2, wantTokens: 2, wantRemoteGets: 2,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
			if tt.before != nil {
				if _, err := f.reconcile(); err != nil {
					t.Fatal(err)
				}
				f.apiReads = 0
				tt.before(f)
			}
			if _, err := f.reconcile(); err != nil {
				t.Fatal(err)
			}
			if f.apiReads != tt.wantAPIReads || len(f.requested) != tt.wantTokens || remoteGets(f) != tt.wantRemoteGets {
				t.Fatalf("%d reads around the cache, %d tokens, %d reads in B; want %d, %d, %d",
					f.apiReads, len(f.requested), remoteGets(f), tt.wantAPIReads, tt.wantTokens, tt.wantRemoteGets)
			}
			if s := f.secret(); s == nil || len(s.Data[v1alpha1.SecretKeyToken]) == 0 {
				t.Fatalf("no token stored: %+v", s)
			}
		})
	}
}

// remoteGets counts the reads made in B.
func remoteGets(f *fixture) int {
	n := 0
	for _, a := range f.remote.Actions() {
		if a.GetVerb() == "get" {
			n++
		}
	}
	return n
}

// TestNarrowedAfterTheWindow: a narrowed allowed-importers annotation is honoured once the read
// that allowed the previous token is older than grantReadTTL.
func TestNarrowedAfterTheWindow(t *testing.T) {
	f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "sa",
		Annotations: map[string]string{v1alpha1.AllowedImportersAnnotation: "cluster1/other"}}}
	if _, err := f.remote.CoreV1().ServiceAccounts("team").Update(context.Background(), sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(grantReadTTL)
	f.requestRefresh("after narrowing")
	if _, err := f.reconcile(); err == nil {
		t.Fatal("refresh after narrowing: no retry")
	}
	if c := f.ready(); c.Reason != v1alpha1.ReasonNamespaceNotAllowed || len(f.requested) != 1 {
		t.Fatalf("Ready = %+v, %d tokens; want %s and 1", c, len(f.requested), v1alpha1.ReasonNamespaceNotAllowed)
	}
}
