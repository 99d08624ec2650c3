package imports

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
)

var podLister = v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister"}

func newCluster(objs ...*v1alpha1.ServiceAccountImport) (*kubefake.Cluster, *Client) {
	c := kubefake.New("cluster1")
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	for _, o := range objs {
		c.Add(o)
	}
	return c, &Client{Clients: c.Clients()}
}

func sai(name string, spec v1alpha1.ServiceAccountImportSpec, status v1alpha1.ServiceAccountImportStatus) *v1alpha1.ServiceAccountImport {
	return &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: spec, Status: status}
}

func ready(status metav1.ConditionStatus, reason, message string, generation int64) []metav1.Condition {
	return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: generation}}
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	_, client := newCluster()
	other := podLister
	other.Name = "other"
	longer := podLister
	longer.ExpirationSeconds = ptr.To[int64](7200)

	steps := []struct {
		name      string
		spec      v1alpha1.ServiceAccountImportSpec
		overwrite bool
		changed   bool
		gen       int64
		wantErr   string
	}{
		{name: "creates", spec: podLister, changed: true, gen: 1},
		{name: "same spec is unchanged", spec: podLister, changed: false, gen: 1},
		{name: "a longer lifetime updates", spec: longer, changed: true, gen: 2},
		{name: "another service account is a collision", spec: other, wantErr: `import "x" already exists in namespace default and imports cluster2/default/pod-lister: choose another name, or pass --overwrite to repoint it`},
		{name: "overwrite repoints", spec: other, overwrite: true, changed: true, gen: 3},
	}
	for _, s := range steps {
		got, changed, err := client.Apply(ctx, "default", "x", s.spec, s.overwrite)
		if s.wantErr != "" {
			if err == nil || err.Error() != s.wantErr {
				t.Fatalf("%s: err = %v, want %q", s.name, err, s.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if changed != s.changed || got.Generation != s.gen || got.Spec.Name != s.spec.Name || ptr.Deref(got.Spec.ExpirationSeconds, 0) != ptr.Deref(s.spec.ExpirationSeconds, 0) {
			t.Errorf("%s: changed=%v generation=%d spec=%+v; want changed=%v generation=%d spec=%+v", s.name, changed, got.Generation, got.Spec, s.changed, s.gen, s.spec)
		}
		stored, err := client.Get(ctx, "default", "x")
		if err != nil || stored.Spec.Name != s.spec.Name {
			t.Fatalf("%s: stored %+v, %v", s.name, stored, err)
		}
	}
}

func TestGetAndList(t *testing.T) {
	ctx := context.Background()
	c, client := newCluster(sai("a", podLister, v1alpha1.ServiceAccountImportStatus{}))
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "team-a"}, Spec: podLister})

	_, err := client.Get(ctx, "default", "nope")
	if !apierrors.IsNotFound(err) || err.Error() != "import \"nope\" not found in namespace default of context \"cluster1\" (list them with `kubectl mcsa get --context cluster1 -n default`)" {
		t.Errorf("missing import: %v", err)
	}
	for ns, want := range map[string]int{"default": 1, "team-a": 1, "": 2, "other": 0} {
		l, err := client.List(ctx, ns)
		if err != nil || len(l) != want {
			t.Errorf("List(%q) = %d imports, %v; want %d", ns, len(l), err, want)
		}
	}

	// Without the CRD, every call names the fix.
	c.Unserve(v1alpha1.Resource)
	for _, err := range []error{
		func() error { _, err := client.Get(ctx, "default", "a"); return err }(),
		func() error { _, err := client.List(ctx, ""); return err }(),
		func() error { _, _, err := client.Apply(ctx, "default", "a", podLister, false); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), "the ServiceAccountImport API is not installed in context \"cluster1\": run `kubectl mcsa install --context cluster1`") {
			t.Errorf("without the API: %v", err)
		}
	}
}

func TestReady(t *testing.T) {
	withGen := func(gen int64, conds []metav1.Condition) *v1alpha1.ServiceAccountImport {
		s := sai("x", podLister, v1alpha1.ServiceAccountImportStatus{Conditions: conds})
		s.Generation = gen
		return s
	}
	if Ready(withGen(1, nil)) != nil {
		t.Error("no condition is not a report")
	}
	if Ready(withGen(2, ready(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, "", 1))) != nil {
		t.Error("a report on an older generation is not a report on this one")
	}
	if c := Ready(withGen(2, ready(metav1.ConditionFalse, v1alpha1.ReasonForbidden, "no", 2))); c == nil || c.Reason != v1alpha1.ReasonForbidden {
		t.Errorf("current report: %v", c)
	}
}

func TestWaitReady(t *testing.T) {
	ctx := context.Background()
	exp := metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))
	tests := []struct {
		name     string
		status   v1alpha1.ServiceAccountImportStatus
		timeout  time.Duration
		wantErr  string
		progress []string
	}{
		{name: "ready", status: v1alpha1.ServiceAccountImportStatus{Conditions: ready(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, "token issued", 1), ExpirationTimestamp: &exp},
			timeout: 5 * time.Second, progress: []string{v1alpha1.ReasonTokenIssued}},
		{name: "a lasting failure is the answer", status: v1alpha1.ServiceAccountImportStatus{Conditions: ready(metav1.ConditionFalse, v1alpha1.ReasonForbidden, "cluster2 has not granted it", 1)},
			timeout: 10 * time.Second, wantErr: "import default/x is not ready: Forbidden: cluster2 has not granted it", progress: []string{v1alpha1.ReasonForbidden}},
		{name: "no report in time", timeout: time.Second,
			wantErr: "import default/x is not ready after 1s: is the importer running? check `kubectl mcsa doctor --context cluster1`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, client := newCluster(sai("x", podLister, tt.status))
			var progress []string
			got, err := client.WaitReady(ctx, "default", "x", tt.timeout, func(reason, _ string) { progress = append(progress, reason) })
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if strings.Join(progress, ",") != strings.Join(tt.progress, ",") {
				t.Errorf("progress %v, want %v", progress, tt.progress)
			}
			if err == nil && !got.Status.ExpirationTimestamp.Equal(&exp) {
				t.Errorf("returned %+v", got.Status)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	ctx := context.Background()
	c, client := newCluster(sai("x", podLister, v1alpha1.ServiceAccountImportStatus{Conditions: ready(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, "", 1)}))
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	value, err := client.RequestRefresh(ctx, "default", "x", now)
	if err != nil || value != "2026-11-27T12:00:00Z" {
		t.Fatalf("RequestRefresh = %q, %v", value, err)
	}
	got, _ := client.Get(ctx, "default", "x")
	if got.Annotations[v1alpha1.RefreshRequestedAnnotation] != value {
		t.Fatalf("annotations %v", got.Annotations)
	}
	if _, err := client.RequestRefresh(ctx, "default", "nope", now); !apierrors.IsNotFound(err) {
		t.Errorf("refresh of a missing import: %v", err)
	}

	// The importer has not acted yet.
	if _, err := client.WaitRefreshed(ctx, "default", "x", value, time.Second); err == nil || !strings.Contains(err.Error(), "the importer did not act on the refresh of default/x within 1s") {
		t.Errorf("WaitRefreshed before the importer acted: %v", err)
	}
	// It acted, and failed: the answer is its reason.
	got.Status.LastRefreshRequest = value
	got.Status.Conditions = ready(metav1.ConditionFalse, v1alpha1.ReasonForbidden, "revoked", 1)
	c.Add(got)
	if _, err := client.WaitRefreshed(ctx, "default", "x", value, 5*time.Second); err == nil || err.Error() != "refresh of default/x failed: Forbidden: revoked" {
		t.Errorf("WaitRefreshed after a failed refresh: %v", err)
	}
}

func TestSecret(t *testing.T) {
	ctx := context.Background()
	c, client := newCluster()
	pending := sai("x", podLister, v1alpha1.ServiceAccountImportStatus{})
	if _, err := client.Secret(ctx, pending); err == nil || err.Error() != "import default/x has no secret (the importer has not written it yet)" {
		t.Errorf("secret of a pending import: %v", err)
	}
	forbidden := sai("x", podLister, v1alpha1.ServiceAccountImportStatus{Conditions: ready(metav1.ConditionFalse, v1alpha1.ReasonForbidden, "not granted", 0)})
	if _, err := client.Secret(ctx, forbidden); err == nil || err.Error() != "import default/x has no secret (Forbidden: not granted)" {
		t.Errorf("secret of a failed import: %v", err)
	}
	c.Add(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SecretName("x"), Namespace: "default"}, Data: map[string][]byte{"token": []byte("t")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "renamed", Namespace: "default"}, Data: map[string][]byte{"token": []byte("u")}})
	if s, err := client.Secret(ctx, pending); err != nil || string(s.Data["token"]) != "t" {
		t.Errorf("secret by its default name: %v, %v", s, err)
	}
	// The status names it when the importer chose another name.
	pending.Status.Secrets = []corev1.ObjectReference{{Name: "renamed"}}
	if s, err := client.Secret(ctx, pending); err != nil || string(s.Data["token"]) != "u" {
		t.Errorf("secret named by the status: %v, %v", s, err)
	}
}
