package bench

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// readyTracker records when each import of a namespace is first seen Ready (for its current
// generation), from a watch: the time is when this process receives the event.
type readyTracker struct {
	mu    sync.Mutex
	ready map[string]time.Time
}

// trackReady runs an informer of the imports of ns until ctx ends.
func (e *env) trackReady(ctx context.Context, ns string) *readyTracker {
	t := &readyTracker{ready: map[string]time.Time{}}
	see := func(obj any) {
		if imp, ok := obj.(*v1alpha1.ServiceAccountImport); ok {
			t.see(imp)
		}
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: fixture.ListWatch(e.ac, &v1alpha1.ServiceAccountImportList{}, client.InNamespace(ns)),
		ObjectType:    &v1alpha1.ServiceAccountImport{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    see,
			UpdateFunc: func(_, obj any) { see(obj) },
		},
	})
	go informer.RunWithContext(ctx)
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
	lastLog := time.Now()
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		got := t.count()
		if got < n && time.Since(lastLog) > 30*time.Second {
			log("%d/%d imports Ready", got, n)
			lastLog = time.Now()
		}
		return got >= n, nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("only %d of %d imports Ready after %s", t.count(), n, timeout)
	}
	return err
}
