package bench

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// readyTracker records when each import of a namespace is first seen Ready (for its current
// generation), from a watch: the time is when this process receives the event.
type readyTracker struct {
	mu    sync.Mutex
	ready map[string]time.Time
}

func (e *env) trackReady(ctx context.Context, ns string) *readyTracker {
	t := &readyTracker{ready: map[string]time.Time{}}
	go func() {
		for ctx.Err() == nil {
			// A list, then a watch from its version; again when the server ends the watch.
			list := &v1alpha1.ServiceAccountImportList{}
			if err := e.ac.List(ctx, list, client.InNamespace(ns)); err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for i := range list.Items {
				t.see(&list.Items[i])
			}
			w, err := e.ac.Watch(ctx, &v1alpha1.ServiceAccountImportList{}, client.InNamespace(ns),
				&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					break
				}
				if imp, ok := ev.Object.(*v1alpha1.ServiceAccountImport); ok {
					t.see(imp)
				}
			}
			w.Stop()
		}
	}()
	return t
}

func (t *readyTracker) see(imp *v1alpha1.ServiceAccountImport) {
	c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != imp.Generation {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.ready[imp.Name]; !ok {
		t.ready[imp.Name] = now
	}
}

func (t *readyTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ready)
}

func (t *readyTracker) times() map[string]time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.ready)
}

// wait waits until n imports are Ready, reporting progress every 30 s.
func (t *readyTracker) wait(ctx context.Context, n int, timeout time.Duration, log func(string, ...any)) error {
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	for {
		got := t.count()
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d imports Ready after %s", got, n, timeout)
		}
		if time.Since(lastLog) > 30*time.Second {
			log("%d/%d imports Ready", got, n)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
