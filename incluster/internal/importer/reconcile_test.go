package importer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// fixture is an importer against a fake local cluster and a fake remote cluster "cluster2",
// with a fake clock. Its remote grants tokens of `granted` lifetime whatever is requested, like
// a server capping lifetimes.
type fixture struct {
	t       *testing.T
	local   client.WithWatch
	remote  *k8sfake.Clientset
	clock   *clocktesting.FakeClock
	granted time.Duration
	// requested are the lifetimes asked for, in order.
	requested []int64
	// remoteErr, if set, fails every remote call.
	remoteErr error
	// onMint, if set, runs when the remote mints a token.
	onMint func()
	events *events.FakeRecorder
	r      *Reconciler
	// secretReads counts whole secrets read from the API server (the cache holds metadata only),
	// apiReads every read from the API server (around the cache).
	secretReads, apiReads int
	// ca is the remote cluster's CA the importer knows.
	ca string
}

const (
	testNS     = "app"
	testImport = "x"
)

func newFixture(t *testing.T, objs ...client.Object) *fixture {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	// A credential, so that remedies name this cluster as remote clusters know it.
	objs = append(objs, &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: v1alpha1.DefaultNamespace, Name: "cluster2", UID: "cred"},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: grant.Namespace, Name: "cluster1"},
	})
	f := &fixture{
		t:     t,
		local: fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&v1alpha1.ServiceAccountImport{}).Build(),
		remote: k8sfake.NewClientset(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "sa"}},
			// A grant allowing up to 24 h, so that tests' lifetimes are not capped unless they say so.
			policies("team", "sa", grant.Policy{MaxLifetime: 24 * time.Hour})),
		clock:   clocktesting.NewFakeClock(t0),
		granted: time.Hour,
		events:  events.NewFakeRecorder(100),
		ca:      "CA",
	}
	minted := 0
	f.remote.PrependReactor("*", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if f.remoteErr != nil {
			return true, nil, f.remoteErr
		}
		if a.GetVerb() != "create" || a.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr := a.(clienttesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
		f.requested = append(f.requested, *tr.Spec.ExpirationSeconds)
		minted++
		if f.onMint != nil {
			f.onMint()
		}
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{
			Token:               fmt.Sprintf("token-%d", minted),
			ExpirationTimestamp: metav1.NewTime(f.clock.Now().Add(f.granted).Truncate(time.Second)),
		}}, nil
	})
	f.restart()
	return f
}

// restart builds a new reconciler on the same clusters: nothing survives but what they hold.
func (f *fixture) restart() {
	opts := Options{Clock: f.clock}
	if err := opts.defaults(); err != nil {
		f.t.Fatal(err)
	}
	cache, api := metadataCache{f.local}, &countingReader{Reader: f.local, secrets: &f.secretReads, all: &f.apiReads}
	cl := newClusters(cache, api, opts.Namespace, "", func(*rest.Config) {})
	cl.static["cluster2"] = &remote{server: "https://cluster2.example", caData: []byte(f.ca), importingCluster: "cluster1", client: f.remote}
	f.r = &Reconciler{client: cache, apiReader: api, clusters: cl, events: f.events, opts: opts, verified: newVerifiedSecrets(), statusWrites: newPerImport[string]()}
}

// metadataCache stands for the manager's cache, which holds secrets as metadata only, and only
// those labelled as an import's: it refuses to read whole secrets, and finds no other.
type metadataCache struct{ client.WithWatch }

func (c metadataCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		return fmt.Errorf("secret %s read whole from the cache, which holds metadata only", key)
	}
	if err := c.WithWatch.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok && m.Kind == "Secret" {
		if _, labelled := m.Labels[v1alpha1.ImportNameKey]; !labelled {
			return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
		}
	}
	return nil
}

func (c metadataCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*corev1.SecretList); ok {
		return errors.New("secrets listed whole from the cache, which holds metadata only")
	}
	return c.WithWatch.List(ctx, list, opts...)
}

// Writes fail once their context is done, as a real client's do (the fake client's do not).

func (c metadataCache) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.WithWatch.Create(ctx, obj, opts...)
}

func (c metadataCache) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.WithWatch.Update(ctx, obj, opts...)
}

func (c metadataCache) Status() client.SubResourceWriter { return ctxStatus{c.WithWatch.Status()} }

type ctxStatus struct{ client.SubResourceWriter }

func (s ctxStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// countingReader reads the API server, counting the reads and the whole secrets read.
type countingReader struct {
	client.Reader
	secrets, all *int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	*c.all++
	if _, ok := obj.(*corev1.Secret); ok {
		*c.secrets++
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// reconcile reconciles the import under test, testImport in testNS, which get, secret and ready
// read too.
func (f *fixture) reconcile() (reconcile.Result, error) {
	f.t.Helper()
	return f.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKey{Namespace: testNS, Name: testImport}})
}

func (f *fixture) get() *v1alpha1.ServiceAccountImport {
	f.t.Helper()
	imp := &v1alpha1.ServiceAccountImport{}
	if err := f.local.Get(context.Background(), client.ObjectKey{Namespace: testNS, Name: testImport}, imp); err != nil {
		f.t.Fatal(err)
	}
	return imp
}

// secret returns the import's secret, nil if there is none.
func (f *fixture) secret() *corev1.Secret {
	f.t.Helper()
	s := &corev1.Secret{}
	if err := f.local.Get(context.Background(), client.ObjectKey{Namespace: testNS, Name: v1alpha1.SecretName(testImport)}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) ready() *metav1.Condition {
	return meta.FindStatusCondition(f.get().Status.Conditions, v1alpha1.ConditionReady)
}

func (f *fixture) update(imp *v1alpha1.ServiceAccountImport) {
	f.t.Helper()
	if err := f.local.Update(context.Background(), imp); err != nil {
		f.t.Fatal(err)
	}
}

func newImport(name, cluster, ns, sa string) *v1alpha1.ServiceAccountImport {
	return &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name, UID: types.UID("uid-" + name), Generation: 1},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: cluster, Namespace: ns, Name: sa},
	}
}

// TestRotation follows one import through its life: issue with a server-capped lifetime, a
// restart, the scheduled refresh, a forced refresh, a spec change.
func TestRotation(t *testing.T) {
	f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
	f.granted = 10 * time.Minute // the server caps the requested hour

	res, err := f.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requested) != 1 || f.requested[0] != 3600 {
		t.Fatalf("requested lifetimes %v, want the default hour once", f.requested)
	}
	if res.RequeueAfter < 7*time.Minute+30*time.Second || res.RequeueAfter > 8*time.Minute+30*time.Second {
		t.Fatalf("next refresh in %s, want ~80 %% of the 10 minutes granted", res.RequeueAfter)
	}
	firstRefresh := t0.Add(res.RequeueAfter)
	s := f.secret()
	if s == nil || string(s.Data["token"]) != "token-1" || string(s.Data["server"]) != "https://cluster2.example" || string(s.Data["namespace"]) != "team" {
		t.Fatalf("secret = %+v", s)
	}
	if !credential.OwnedBy(s, f.get()) || s.Labels[v1alpha1.ImportNameKey] != testImport {
		t.Fatalf("secret not owned or labelled: %+v", s.ObjectMeta)
	}
	imp := f.get()
	if c := f.ready(); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonTokenIssued || c.ObservedGeneration != imp.Generation {
		t.Fatalf("Ready = %+v", c)
	}
	if !imp.Status.LastRefreshTime.Time.Equal(t0) || !imp.Status.ExpirationTimestamp.Time.Equal(t0.Add(10*time.Minute)) ||
		len(imp.Status.Secrets) != 1 || imp.Status.Secrets[0].Name != s.Name || imp.Status.ObservedGeneration != imp.Generation {
		t.Fatalf("status = %+v", imp.Status)
	}

	// A restart a minute later recomputes the same schedule and mints nothing.
	f.restart()
	f.clock.Step(time.Minute)
	res, err = f.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requested) != 1 || res.RequeueAfter != firstRefresh.Sub(f.clock.Now()) {
		t.Fatalf("after restart: %d tokens, next refresh in %s; want 1 and %s", len(f.requested), res.RequeueAfter, firstRefresh.Sub(f.clock.Now()))
	}

	// On schedule: a new token, and the next refresh again ~80 % later.
	f.clock.SetTime(firstRefresh)
	if res, err = f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := string(f.secret().Data["token"]); got != "token-2" {
		t.Fatalf("token after scheduled refresh = %q", got)
	}
	if lr := f.get().Status.LastRefreshTime; !lr.Time.Equal(firstRefresh.Truncate(time.Second)) {
		t.Fatalf("lastRefreshTime = %s, want %s", lr, firstRefresh)
	}
	if res.RequeueAfter < 7*time.Minute || res.RequeueAfter > 9*time.Minute {
		t.Fatalf("next refresh in %s", res.RequeueAfter)
	}

	// Forced refresh, acted upon once.
	f.clock.Step(time.Minute)
	imp = f.get()
	imp.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: "please"}
	f.update(imp)
	for range 2 {
		if _, err := f.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	if imp := f.get(); len(f.requested) != 3 || imp.Status.LastRefreshRequest != "please" || string(f.secret().Data["token"]) != "token-3" {
		t.Fatalf("forced refresh: %d tokens, lastRefreshRequest %q", len(f.requested), imp.Status.LastRefreshRequest)
	}

	// A new spec (generation) gets a token of its own.
	imp = f.get()
	imp.Spec.ExpirationSeconds = ptr.To[int64](7200)
	imp.Generation++
	f.update(imp)
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(f.requested) != 4 || f.requested[3] != 7200 {
		t.Fatalf("after spec change: requested %v", f.requested)
	}
	if c := f.ready(); c.ObservedGeneration != f.get().Generation {
		t.Fatalf("Ready observedGeneration = %d, want %d", c.ObservedGeneration, f.get().Generation)
	}
	// The scheduled refresh is routine and has no event; the forced one and the spec change do.
	wantEvents(t, f.events, "Normal TokenIssued", "Normal TokenRefreshed", "Normal TokenRefreshed")
}

// TestOutage: a failing remote keeps the current token, says until when it is valid, and
// recovers by itself.
func TestOutage(t *testing.T) {
	f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
	res, err := f.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Step(res.RequeueAfter)
	f.remoteErr = errors.New("connection refused")
	if _, err := f.reconcile(); err == nil {
		t.Fatal("no error: a failure must be retried with backoff")
	}
	c := f.ready()
	if c.Reason != v1alpha1.ReasonClusterUnreachable || !strings.Contains(c.Message, "stays valid until") {
		t.Fatalf("Ready = %+v", c)
	}
	if got := string(f.secret().Data["token"]); got != "token-1" {
		t.Fatalf("token during outage = %q, want the current one kept", got)
	}
	if exp := f.get().Status.ExpirationTimestamp; exp == nil || !exp.Time.Equal(t0.Add(time.Hour)) {
		t.Fatalf("expirationTimestamp during outage = %v", exp)
	}
	f.remoteErr = nil
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if c := f.ready(); c.Reason != v1alpha1.ReasonTokenIssued || string(f.secret().Data["token"]) != "token-2" {
		t.Fatalf("after recovery: Ready = %+v", c)
	}
	wantEvents(t, f.events, "Normal TokenIssued", "Warning ClusterUnreachable", "Normal TokenRefreshed")
}

func TestFailures(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "serviceaccounts"}, "sa", errors.New("RBAC"))
	conflicting := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "x-token"}, Data: map[string][]byte{"mine": []byte("yes")}}
	tests := []struct {
		name       string
		imp        *v1alpha1.ServiceAccountImport
		objs       []client.Object
		remoteErr  error
		remoteSA   *corev1.ServiceAccount
		wantReason string
		wantInMsg  string
		wantRetry  bool
	}{{
		name: "not granted", imp: newImport(testImport, "cluster2", "team", "sa"), remoteErr: forbidden,
		wantReason: v1alpha1.ReasonForbidden, wantInMsg: "`kubectl mcsa allow cluster1 team/sa --context cluster2`", wantRetry: true,
	}, {
		name: "remote service account missing", imp: newImport(testImport, "cluster2", "team", "nobody"),
		wantReason: v1alpha1.ReasonServiceAccountNotFound, wantInMsg: "team/nobody not found in cluster cluster2", wantRetry: true,
	}, {
		name: "namespace not allowed", imp: newImport(testImport, "cluster2", "team", "restricted"),
		remoteSA: &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "restricted",
			Annotations: map[string]string{v1alpha1.AllowedImportersAnnotation: "cluster1/other,cluster3/*"}}},
		wantReason: v1alpha1.ReasonNamespaceNotAllowed, wantInMsg: "`kubectl mcsa allow cluster1 team/restricted --into-namespaces app --context cluster2`", wantRetry: true,
	}, {
		name: "unparsable restriction allows nobody", imp: newImport(testImport, "cluster2", "team", "garbled"),
		remoteSA: &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "garbled",
			Annotations: map[string]string{v1alpha1.AllowedImportersAnnotation: "cluster1"}}},
		wantReason: v1alpha1.ReasonNamespaceNotAllowed, wantInMsg: "not CLUSTER/NAMESPACE", wantRetry: true,
	}, {
		name: "remote unreachable", imp: newImport(testImport, "cluster2", "team", "sa"), remoteErr: errors.New("dial tcp: connection refused"),
		wantReason: v1alpha1.ReasonClusterUnreachable, wantInMsg: "connection refused", wantRetry: true,
	}, {
		name: "credential rejected", imp: newImport(testImport, "cluster2", "team", "sa"), remoteErr: apierrors.NewUnauthorized("expired"),
		wantReason: v1alpha1.ReasonClusterUnreachable, wantInMsg: "`kubectl mcsa bootstrap cluster1 cluster2`", wantRetry: true,
	}, {
		name: "unknown cluster", imp: newImport(testImport, "cluster9", "team", "sa"),
		wantReason: v1alpha1.ReasonClusterUnknown, wantInMsg: "`kubectl mcsa bootstrap cluster1 cluster9`",
	}, {
		name: "importer identity", imp: newImport(testImport, "cluster2", grant.Namespace, "cluster1"),
		wantReason: v1alpha1.ReasonInvalidSpec, wantInMsg: "only the cluster credential",
	}, {
		name: "secret of someone else", imp: newImport(testImport, "cluster2", "team", "sa"), objs: []client.Object{conflicting},
		wantReason: v1alpha1.ReasonSecretConflict, wantInMsg: "app/x-token",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, append(tt.objs, tt.imp)...)
			f.remoteErr = tt.remoteErr
			if tt.remoteSA != nil {
				if _, err := f.remote.CoreV1().ServiceAccounts("team").Create(context.Background(), tt.remoteSA, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			_, err := f.reconcile()
			if (err != nil) != tt.wantRetry {
				t.Errorf("error = %v, want a retry: %v", err, tt.wantRetry)
			}
			c := f.ready()
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tt.wantReason || !strings.Contains(c.Message, tt.wantInMsg) {
				t.Fatalf("Ready = %+v, want reason %s with %q", c, tt.wantReason, tt.wantInMsg)
			}
			if len(f.requested) != 0 {
				t.Errorf("a token was minted: %v", f.requested)
			}
			s := f.secret()
			if tt.wantReason == v1alpha1.ReasonSecretConflict {
				if s == nil || string(s.Data["mine"]) != "yes" || len(s.Data) != 1 || len(s.OwnerReferences) != 0 {
					t.Errorf("someone else's secret was touched: %+v", s)
				}
			} else if s != nil {
				t.Errorf("secret written: %+v", s)
			}
			wantEvents(t, f.events, "Warning "+tt.wantReason)
		})
	}
}

func TestImportsOfCredential(t *testing.T) {
	objs := []client.Object{
		newImport("a", "cluster2", "team", "sa"),
		newImport("b", "cluster3", "team", "sa"),
		&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "c"}, Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2"}},
	}
	f := newFixture(t, objs...)
	// The real index is the manager's; the fake client needs its own.
	scheme := f.local.Scheme()
	f.r.client = fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithIndex(&v1alpha1.ServiceAccountImport{}, clusterNameField, func(o client.Object) []string {
			return []string{o.(*v1alpha1.ServiceAccountImport).Spec.ClusterName}
		}).Build()
	cred := func(ns, name, cluster string) *v1alpha1.ServiceAccountImport {
		return &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: cluster}}
	}
	tests := []struct {
		name string
		obj  client.Object
		want []string
	}{
		{"credential secret of cluster2", credSecret(v1alpha1.DefaultNamespace, "cluster2-token", "cluster2"), []string{"app/a", "other/c"}},
		{"credential of cluster2", cred(v1alpha1.DefaultNamespace, "cluster2", "cluster2"), []string{"app/a", "other/c"}},
		{"an import's secret elsewhere", credSecret("app", "cluster2-token", "cluster2"), nil},
		{"another secret of the namespace", credSecret(v1alpha1.DefaultNamespace, "cluster2-token", "x"), nil},
		{"an import of the namespace", cred(v1alpha1.DefaultNamespace, "other", "cluster2"), nil},
		{"an import named after its cluster elsewhere", cred("app", "cluster2", "cluster2"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range f.r.importsOfCredential(context.Background(), tt.obj) {
				got = append(got, r.String())
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("requests = %v, want %v", got, tt.want)
			}
		})
	}
}

// credSecret is a secret's metadata, as the importer watches secrets.
func credSecret(ns, name, label string) *metav1.PartialObjectMetadata {
	s := newSecretMetadata()
	s.Namespace, s.Name, s.Labels = ns, name, map[string]string{v1alpha1.ImportNameKey: label}
	return s
}

// wantEvents checks that the events recorded so far start with the given type and reason
// prefixes, in order.
func wantEvents(t *testing.T, rec *events.FakeRecorder, want ...string) {
	t.Helper()
	var got []string
	for len(rec.Events) > 0 {
		got = append(got, <-rec.Events)
	}
	if len(got) != len(want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+" ") {
			t.Errorf("event %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// TestSecretEditsDoNotMoveTheSchedule: whoever may edit the import's secret (its namespace's
// users) cannot postpone the refresh nor change the expiry the import reports; the importer
// repairs what it wrote and refreshes on the schedule its status holds.
func TestSecretEditsDoNotMoveTheSchedule(t *testing.T) {
	postpone := func(generation string) func(*corev1.Secret) {
		return func(s *corev1.Secret) {
			s.Annotations[v1alpha1.TokenIssuedAtAnnotation] = t0.Add(time.Minute).Format(time.RFC3339)
			s.Annotations[v1alpha1.TokenExpiresAtAnnotation] = t0.Add(24 * time.Hour).Format(time.RFC3339)
			s.Annotations[v1alpha1.ImportGenerationAnnotation] = generation
		}
	}
	tests := []struct {
		name string
		edit func(*corev1.Secret)
		// refreshedNow: the edit itself calls for a new token (the token is gone).
		refreshedNow bool
	}{
		{name: "schedule annotations say a day-long token issued a minute ago", edit: postpone("1")},
		{name: "schedule annotations claim a newer spec", edit: postpone("99")},
		{name: "digest annotation forged", edit: func(s *corev1.Secret) { s.Annotations[v1alpha1.SecretDigestAnnotation] = "0" }},
		{name: "server rewritten", edit: func(s *corev1.Secret) { s.Data[v1alpha1.SecretKeyServer] = []byte("https://evil.example") }},
		{name: "token emptied", edit: func(s *corev1.Secret) { s.Data[v1alpha1.SecretKeyToken] = nil }, refreshedNow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
			f.granted = 10 * time.Minute
			res, err := f.reconcile()
			if err != nil {
				t.Fatal(err)
			}
			due := t0.Add(res.RequeueAfter)
			written := f.secret()

			f.clock.Step(time.Minute)
			edited := written.DeepCopy()
			if edited.Annotations == nil {
				edited.Annotations = map[string]string{}
			}
			tt.edit(edited)
			if err := f.local.Update(context.Background(), edited); err != nil {
				t.Fatal(err)
			}
			// The edit's event.
			res, err = f.reconcile()
			if err != nil {
				t.Fatal(err)
			}
			imp, s := f.get(), f.secret()
			wantTokens, issued := 1, t0
			if tt.refreshedNow {
				wantTokens, issued, due = 2, t0.Add(time.Minute), t0.Add(time.Minute).Add(res.RequeueAfter)
			}
			if len(f.requested) != wantTokens {
				t.Fatalf("%d tokens minted after the edit, want %d", len(f.requested), wantTokens)
			}
			if !imp.Status.LastRefreshTime.Time.Equal(issued) || !imp.Status.ExpirationTimestamp.Time.Equal(issued.Add(10*time.Minute)) {
				t.Errorf("status says issued %s, expires %s; want the token's own %s and %s",
					imp.Status.LastRefreshTime, imp.Status.ExpirationTimestamp, issued, issued.Add(10*time.Minute))
			}
			if got := t0.Add(time.Minute).Add(res.RequeueAfter); !got.Equal(due) {
				t.Errorf("next refresh at %s, want %s", got, due)
			}
			// Repaired: the importer's data and digest back, the old schedule annotations gone.
			for _, a := range legacyAnnotations {
				if v, ok := s.Annotations[a]; ok {
					t.Errorf("secret keeps annotation %s=%q", a, v)
				}
			}
			if s.Annotations[v1alpha1.SecretDigestAnnotation] != secretDigest(s) || string(s.Data[v1alpha1.SecretKeyServer]) != "https://cluster2.example" ||
				string(s.Data[v1alpha1.SecretKeyToken]) != fmt.Sprintf("token-%d", wantTokens) {
				t.Errorf("secret not repaired: annotations %v, server %q, token %q", s.Annotations, s.Data[v1alpha1.SecretKeyServer], s.Data[v1alpha1.SecretKeyToken])
			}

			// Refreshed when the status' schedule says, not later.
			f.clock.SetTime(due.Add(-time.Second))
			if _, err := f.reconcile(); err != nil {
				t.Fatal(err)
			}
			if len(f.requested) != wantTokens {
				t.Fatalf("refreshed before the schedule: %d tokens", len(f.requested))
			}
			f.clock.SetTime(due)
			if _, err := f.reconcile(); err != nil {
				t.Fatal(err)
			}
			if len(f.requested) != wantTokens+1 {
				t.Fatalf("not refreshed at %s, as scheduled: %d tokens", due, len(f.requested))
			}
		})
	}
}

// TestStatusLost: an import whose status was wiped refreshes once, then keeps its new schedule.
func TestStatusLost(t *testing.T) {
	f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	imp := f.get()
	imp.Status = v1alpha1.ServiceAccountImportStatus{}
	if err := f.local.Status().Update(context.Background(), imp); err != nil {
		t.Fatal(err)
	}
	f.restart()
	f.clock.Step(time.Minute)
	for range 3 {
		if _, err := f.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	imp = f.get()
	if len(f.requested) != 2 || string(f.secret().Data[v1alpha1.SecretKeyToken]) != "token-2" {
		t.Fatalf("%d tokens minted, want one more after the status was lost", len(f.requested))
	}
	if imp.Status.LastRefreshTime == nil || !imp.Status.LastRefreshTime.Time.Equal(t0.Add(time.Minute)) || imp.Status.TokenGeneration != imp.Generation {
		t.Fatalf("status = %+v", imp.Status)
	}
}

// TestUpgradeFromSecretAnnotations: an import written by an earlier importer, which kept the
// schedule in the secret's annotations and had no status.tokenGeneration, keeps its token; the
// secret loses those annotations and gains the digest.
func TestUpgradeFromSecretAnnotations(t *testing.T) {
	imp := newImport(testImport, "cluster2", "team", "sa")
	imp.Status = v1alpha1.ServiceAccountImportStatus{
		ObservedGeneration:  1,
		Conditions:          []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonTokenIssued, ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(t0)}},
		Secrets:             []corev1.ObjectReference{{Name: v1alpha1.SecretName(testImport)}},
		LastRefreshTime:     &metav1.Time{Time: t0},
		ExpirationTimestamp: &metav1.Time{Time: t0.Add(time.Hour)},
	}
	old, err := credential.NewSecret(imp, credential.Data{ClusterName: "cluster2", Server: "https://cluster2.example", CAData: []byte("CA"), Namespace: "team", Token: "old"})
	if err != nil {
		t.Fatal(err)
	}
	old.Annotations = map[string]string{
		v1alpha1.TokenIssuedAtAnnotation: t0.Format(time.RFC3339), v1alpha1.TokenExpiresAtAnnotation: t0.Add(time.Hour).Format(time.RFC3339),
		v1alpha1.ImportGenerationAnnotation: "1", "someone/else": "kept",
	}
	f := newFixture(t, imp, old)
	f.clock.Step(10 * time.Minute)
	res, err := f.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requested) != 0 {
		t.Fatalf("%d tokens minted on upgrade", len(f.requested))
	}
	s := f.secret()
	if string(s.Data[v1alpha1.SecretKeyToken]) != "old" || s.Annotations["someone/else"] != "kept" || s.Annotations[v1alpha1.SecretDigestAnnotation] != secretDigest(s) {
		t.Errorf("secret after upgrade: %v", s.Annotations)
	}
	for _, a := range legacyAnnotations {
		if _, ok := s.Annotations[a]; ok {
			t.Errorf("secret keeps annotation %s", a)
		}
	}
	if got := f.get().Status; got.TokenGeneration != 1 || !got.LastRefreshTime.Time.Equal(t0) {
		t.Errorf("status after upgrade: %+v", got)
	}
	if res.RequeueAfter < 35*time.Minute || res.RequeueAfter > 41*time.Minute {
		t.Errorf("next refresh in %s, want the token's schedule (~80 %% of its hour, 10 minutes in)", res.RequeueAfter)
	}
}

// TestSecretDataReadOnlyWhenNeeded: the cache holds secrets' metadata; their data is read from
// the API server only when the secret may differ from what the importer would write. A restart
// reads none: the digest annotation says the secret is current.
func TestSecretDataReadOnlyWhenNeeded(t *testing.T) {
	f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
	reconcile := func(what string, wantReads int) {
		t.Helper()
		f.secretReads = 0
		if _, err := f.reconcile(); err != nil {
			t.Fatal(err)
		}
		if f.secretReads != wantReads {
			t.Errorf("%s: %d secrets read whole, want %d", what, f.secretReads, wantReads)
		}
	}
	reconcile("issue", 0)
	reconcile("again", 0)
	f.restart()
	reconcile("after a restart", 0)

	// The remote's CA changed: the secret is read and rewritten, once.
	f.ca = "CA2"
	f.restart()
	reconcile("CA changed", 1)
	if got := string(f.secret().Data[v1alpha1.SecretKeyCACert]); got != "CA2" {
		t.Fatalf("ca.crt = %q after the CA changed", got)
	}
	reconcile("CA rewritten", 0)

	// Someone else changed the secret (a label of theirs): read, nothing to rewrite, remembered.
	s := f.secret()
	s.Labels["someone"] = "else"
	if err := f.local.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	reconcile("secret changed by someone else", 1)
	if got := f.secret(); got.ResourceVersion != s.ResourceVersion {
		t.Errorf("secret rewritten for nothing")
	}
	reconcile("nothing changed", 0)
	if len(f.requested) != 1 {
		t.Errorf("%d tokens minted, want 1", len(f.requested))
	}
}

// TestCredentialTokenReadOnChange: a cluster credential's token is read from the API server
// when the credential is new or changed, not at every reconcile.
func TestCredentialTokenReadOnChange(t *testing.T) {
	cred := &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: v1alpha1.DefaultNamespace, Name: "cluster3", UID: "cred3", Generation: 1},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster3", Namespace: grant.Namespace, Name: "cluster1"},
	}
	secret, err := credential.NewSecret(cred, credential.Data{ClusterName: "cluster3", Server: "https://cluster3.example", Namespace: grant.Namespace, Token: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, cred, secret)
	get := func(wantReads int) *remote {
		t.Helper()
		r, err := f.r.clusters.get(context.Background(), "cluster3")
		if err != nil {
			t.Fatal(err)
		}
		if f.secretReads != wantReads {
			t.Fatalf("%d credential secrets read whole, want %d", f.secretReads, wantReads)
		}
		return r
	}
	first := get(1)
	if again := get(1); again != first {
		t.Fatal("client rebuilt for an unchanged credential")
	}
	secret.Data[v1alpha1.SecretKeyToken] = []byte("t2")
	if err := f.local.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	if renewed := get(2); renewed == first {
		t.Fatal("client kept after the credential changed")
	}
	get(2)
}

// TestStoppedAfterMinting: an importer stopped (its context cancelled) just after B minted a
// token still stores the token and its schedule, so that the restarted importer mints nothing.
func TestStoppedAfterMinting(t *testing.T) {
	f := newFixture(t, newImport(testImport, "cluster2", "team", "sa"))
	ctx, cancel := context.WithCancel(context.Background())
	f.onMint = cancel
	if _, err := f.r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: testNS, Name: testImport}}); err != nil {
		t.Fatal(err)
	}
	imp := f.get()
	if s := f.secret(); s == nil || string(s.Data[v1alpha1.SecretKeyToken]) != "token-1" {
		t.Fatalf("token minted while stopping not stored: %+v", s)
	}
	if imp.Status.LastRefreshTime == nil || imp.Status.TokenGeneration != imp.Generation {
		t.Fatalf("schedule of the token minted while stopping not recorded: %+v", imp.Status)
	}
	f.onMint = nil
	f.restart()
	f.clock.Step(time.Minute)
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(f.requested) != 1 {
		t.Fatalf("%d tokens minted: the restart did not find the schedule", len(f.requested))
	}
}

// policies is B's token policies ConfigMap of namespace holding cluster1's grant of sa.
func policies(namespace, sa string, p grant.Policy) *corev1.ConfigMap {
	cm := grant.Policies(namespace)
	cm.Data = map[string]string{grant.PolicyKey("cluster1", sa): grant.PolicyValue("cluster1", sa, p)}
	return cm
}

// TestGrantPolicy: the importer asks for no more than the grant allows, says when it got less
// than the import asks for, refuses audiences the grant does not list, and requests nothing
// without a policy (removing the token it holds).
func TestGrantPolicy(t *testing.T) {
	tests := []struct {
		name        string
		policy      *grant.Policy // nil: no entry
		seconds     int64
		audiences   []string
		wantReason  string
		wantSeconds int64 // requested; 0: no request
		wantInMsg   string
	}{
		{name: "within", policy: &grant.Policy{MaxLifetime: time.Hour}, seconds: 1800, wantReason: v1alpha1.ReasonTokenIssued, wantSeconds: 1800},
		{name: "capped", policy: &grant.Policy{MaxLifetime: time.Hour}, seconds: 86400, wantReason: v1alpha1.ReasonTokenIssued, wantSeconds: 3600,
			wantInMsg: "capped at 1h0m0s, less than the 24h0m0s the import asks for"},
		{name: "allowed audience", policy: &grant.Policy{MaxLifetime: time.Hour, Audiences: []string{"vault"}}, seconds: 1800, audiences: []string{"vault"},
			wantReason: v1alpha1.ReasonTokenIssued, wantSeconds: 1800},
		{name: "audience not allowed", policy: &grant.Policy{MaxLifetime: time.Hour, Audiences: []string{"vault"}}, seconds: 1800, audiences: []string{"sts.amazonaws.com"},
			wantReason: v1alpha1.ReasonAudienceNotAllowed, wantInMsg: "--audiences sts.amazonaws.com"},
		{name: "no policy", seconds: 1800, wantReason: v1alpha1.ReasonGrantAnchorMissing, wantInMsg: "kubectl mcsa allow cluster1 team/sa --context cluster2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imp := newImport(testImport, "cluster2", "team", "sa")
			imp.Spec.ExpirationSeconds = ptr.To(tt.seconds)
			imp.Spec.Audiences = tt.audiences
			f := newFixture(t, imp)
			f.granted = time.Duration(min(tt.seconds, 3600)) * time.Second
			cms := f.remote.CoreV1().ConfigMaps("team")
			if err := cms.Delete(t.Context(), grant.PoliciesName, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if tt.policy != nil {
				if _, err := cms.Create(t.Context(), policies("team", "sa", *tt.policy), metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			_, _ = f.reconcile()
			cond := meta.FindStatusCondition(f.get().Status.Conditions, v1alpha1.ConditionReady)
			if cond == nil || cond.Reason != tt.wantReason || !strings.Contains(cond.Message, tt.wantInMsg) {
				t.Fatalf("Ready = %+v, want reason %s with %q", cond, tt.wantReason, tt.wantInMsg)
			}
			var want []int64
			if tt.wantSeconds != 0 {
				want = []int64{tt.wantSeconds}
			}
			if !slices.Equal(f.requested, want) {
				t.Errorf("requested lifetimes %v, want %v", f.requested, want)
			}
		})
	}
}
