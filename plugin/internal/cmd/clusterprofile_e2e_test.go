package cmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/cluster-inventory-api/pkg/access"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/install"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// TestClusterProfileConsumerEndToEnd: the controller, with the publisher on, publishes a
// ClusterProfile of cluster B; a consumer built on the library real consumers use
// (cluster-inventory-api's pkg/access), with the provider file of `credential --provider-file`,
// reaches B through it and the plugin binary, calling every 100 ms across three forced
// rotations of its import without a single 401 or other failure. Another writer's fields of the
// profile survive the publisher's; the profile goes with the credential.
func TestClusterProfileConsumerEndToEnd(t *testing.T) {
	const a, b, fleet, app, sa = "cluster1", "cluster2", "fleet", "app", "pod-lister"
	start := time.Now()
	since := func() time.Duration { return time.Since(start).Round(100 * time.Millisecond) }
	f := fixture.ForTest(t, fixture.Options{Clusters: []string{a, b}, Install: []string{a}, Bootstrap: []fixture.Link{{Target: a, Source: b}}, Log: t.Logf})
	ctx := t.Context()
	ca, cb := f.Cluster(a), f.Cluster(b)
	t.Setenv("KUBECACHEDIR", t.TempDir())
	// The plugin, built while the controller starts.
	dir := t.TempDir()
	type built struct {
		bin string
		err error
	}
	plugin := make(chan built, 1)
	go func() {
		bin, err := controlplane.BuildCommand("./plugin/cmd/kubectl-mcsa", dir)
		plugin <- built{bin, err}
	}()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// In A: what `install --cluster-profiles fleet` adds to the default install (the fixture
	// installed that): the ClusterProfile CRD and the controller's Role in fleet.
	must(ca.Namespaces(ctx, fleet, app))
	t.Logf("%s: clusters up", since())
	must(ca.Apply(ctx, clusterProfileObjects(t, fleet)...))
	scheme := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(scheme))
	must(cpv1alpha1.AddToScheme(scheme))
	cl, err := client.NewWithWatch(ca.Config, client.Options{Scheme: scheme})
	must(err)
	must(wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return cl.List(ctx, &cpv1alpha1.ClusterProfileList{}, client.InNamespace(fleet)) == nil, nil
	}))

	// In B: team/pod-lister may list pods in team, and A may import it.
	must(cb.Namespaces(ctx, "team"))
	must(cb.CreateIfMissing(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: sa}}))
	must(cb.CreateIfMissing(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: sa},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}}))
	must(cb.CreateIfMissing(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: sa},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "team", Name: sa}}}))
	must(f.Allow(ctx, a, b, "team", sa))

	// Another writer was first: it created the profile, naming kubectl-mcsa its manager, with
	// an access provider and a condition of its own. The publisher's writes must keep them.
	mine := func(status map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": cpv1alpha1.GroupVersion.String(), "kind": cpv1alpha1.ClusterProfileKind,
			"metadata": map[string]any{"namespace": fleet, "name": b, "labels": map[string]any{"example.com/team": "platform"}},
			"spec":     map[string]any{"clusterManager": map[string]any{"name": v1alpha1.ClusterManagerName}},
		}}
		if status != nil {
			u.Object["status"] = status
		}
		return u
	}
	must(cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(mine(nil)), client.FieldOwner("other-manager")))
	must(cl.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(mine(map[string]any{
		"accessProviders": []any{map[string]any{"name": "other", "cluster": map[string]any{"server": "https://other.example"}}},
		"conditions":      []any{map[string]any{"type": "Joined", "status": "True", "reason": "Joined", "message": "", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}},
	})), client.FieldOwner("other-manager")))

	// In A: the consumer's import, named after the cluster in its own namespace, as the profile
	// says.
	f.StartController(t, a, "--"+manifests.ClusterProfilesFlag+"="+fleet)
	imp := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: app, Name: b},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: b, Namespace: "team", Name: sa, ExpirationSeconds: ptr.To[int64](v1alpha1.MinExpirationSeconds)}}
	must(ca.Client.Create(ctx, imp))
	if got, err := fixture.WaitFor(ctx, ca.Client, imp, 2*time.Minute, func(i *v1alpha1.ServiceAccountImport) bool {
		return meta.IsStatusConditionTrue(i.Status.Conditions, v1alpha1.ConditionReady)
	}); err != nil {
		t.Fatalf("%v; last seen: %+v", err, got)
	}

	t.Logf("%s: import ready", since())

	// The published profile.
	profile := &cpv1alpha1.ClusterProfile{ObjectMeta: metav1.ObjectMeta{Namespace: fleet, Name: b}}
	published := func(p *cpv1alpha1.ClusterProfile) bool {
		return meta.IsStatusConditionTrue(p.Status.Conditions, cpv1alpha1.ClusterConditionControlPlaneHealthy) && hasAccessProvider(p, v1alpha1.AccessProviderName)
	}
	profile, err = fixture.WaitFor(ctx, cl, profile, time.Minute, published)
	if err != nil {
		t.Fatalf("no healthy ClusterProfile %s/%s: %v; last seen: %+v", fleet, b, err, profile)
	}
	if profile.Spec.ClusterManager.Name != v1alpha1.ClusterManagerName || profile.Labels[cpv1alpha1.LabelClusterManagerKey] != v1alpha1.ClusterManagerName {
		t.Errorf("profile's cluster manager %q, label %q", profile.Spec.ClusterManager.Name, profile.Labels[cpv1alpha1.LabelClusterManagerKey])
	}
	if profile.Status.Version.Kubernetes == "" {
		t.Error("profile has no status.version")
	}
	if !hasAccessProvider(profile, "other") || meta.FindStatusCondition(profile.Status.Conditions, "Joined") == nil || profile.Labels["example.com/team"] != "platform" {
		t.Errorf("the other writer's fields are gone: labels %v, access providers %+v, conditions %+v", profile.Labels, profile.Status.AccessProviders, profile.Status.Conditions)
	}
	if ap := accessProvider(profile, v1alpha1.AccessProviderName); ap.Cluster.Server != cb.Server || string(ap.Cluster.CertificateAuthorityData) != string(cb.CAData) {
		t.Errorf("access provider %s %q, want cluster2's server %s and CA", ap.Name, ap.Cluster.Server, cb.Server)
	}
	t.Logf("%s: published: version %s, %d access providers", since(), profile.Status.Version.Kubernetes, len(profile.Status.AccessProviders))

	// Count the profile's writes from now on: the consumer's rotations are none of its business.
	var profileWrites atomic.Int32
	watchProfile(ctx, t, cl, profile, &profileWrites)

	// The consumer: the provider file, the library, the plugin binary behind a logging wrapper.
	pb := <-plugin
	must(pb.err)
	bin := pb.bin
	execLog := filepath.Join(dir, "exec.log")
	wrapper := filepath.Join(dir, "kubectl-mcsa-logged")
	must(os.WriteFile(wrapper, []byte(fmt.Sprintf(`#!/bin/sh
out=$(%q "$@") || exit $?
printf '%%s %%s\n' "$(date +%%s.%%N)" "$out" >> %q
printf '%%s\n' "$out"
`, bin, execLog)), 0o755))
	providers, errOut, err := run(t, f.Kubeconfig, "credential", "--provider-file", "--exec-command", wrapper, "-n", app, "--context", a, "--kubeconfig", f.Kubeconfig)
	if err != nil {
		t.Fatalf("credential --provider-file: %v\n%s", err, errOut)
	}
	providerFile := filepath.Join(dir, "providers.json")
	must(os.WriteFile(providerFile, []byte(providers), 0o600))
	accessCfg, err := access.NewFromFile(providerFile)
	must(err)
	restCfg, err := accessCfg.BuildConfigFromCP(profile)
	must(err)
	kc, err := kubernetes.NewForConfig(restCfg)
	must(err)

	t.Logf("%s: plugin built", since())
	stop := make(chan struct{})
	done := make(chan callResults, 1)
	go func() { done <- callEvery(ctx, stop, 100*time.Millisecond, kc) }()
	deadline := time.Now().Add(30 * time.Second)
	for len(readExecLog(t, execLog)) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for i := range 3 {
		if _, errOut, err := run(t, f.Kubeconfig, "rotate", b, "-n", app, "--context", a, "--wait", "--timeout", "60s"); err != nil {
			close(stop)
			t.Fatalf("rotation %d: %v\n%s", i+1, err, errOut)
		}
		time.Sleep(2 * time.Second)
	}
	close(stop)
	r := <-done
	execs := readExecLog(t, execLog)
	t.Logf("%s: %d calls to %s through the ClusterProfile, %d 401s, %d other failures, %d plugin runs, 3 forced rotations, %d profile writes meanwhile",
		since(), r.calls, b, r.unauthorized, r.failures, len(execs), profileWrites.Load())
	if r.unauthorized != 0 || r.failures != 0 {
		t.Errorf("%d 401s and %d other failures in %d calls; first errors: %v", r.unauthorized, r.failures, r.calls, r.firstErrs)
	}
	if r.calls < 30 {
		t.Errorf("only %d calls, want at least 30", r.calls)
	}
	if len(execs) != 1 {
		t.Errorf("the plugin ran %d times, want once: the credential is cached until 75 %% of the token's lifetime, rotations must not cause a run", len(execs))
	}
	if n := profileWrites.Load(); n != 0 {
		t.Errorf("the profile was written %d times while only the consumer's import rotated", n)
	}

	// The credential gone, the profile goes.
	must(ca.Client.Delete(ctx, &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: manifests.Namespace, Name: b}}))
	must(wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err := cl.Get(ctx, client.ObjectKeyFromObject(profile), &cpv1alpha1.ClusterProfile{})
		return apierrors.IsNotFound(err), nil
	}))
}

// clusterProfileObjects are the objects `install --cluster-profiles ns` adds to the default
// install.
func clusterProfileObjects(t *testing.T, ns string) []*unstructured.Unstructured {
	t.Helper()
	key := func(o *unstructured.Unstructured) string {
		return o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
	}
	objects := func(p install.Params) []*unstructured.Unstructured {
		rendered, err := install.Render(p)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := install.Objects(rendered)
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	var base []string
	for _, o := range objects(install.Params{}) {
		base = append(base, key(o))
	}
	var added []*unstructured.Unstructured
	for _, o := range objects(install.Params{ClusterProfiles: ns}) {
		if !slices.Contains(base, key(o)) {
			added = append(added, o)
		}
	}
	if len(added) != 3 {
		t.Fatalf("install --cluster-profiles adds %d objects, want the CRD, a Role and a RoleBinding", len(added))
	}
	return added
}

func accessProvider(p *cpv1alpha1.ClusterProfile, name string) *cpv1alpha1.AccessProvider {
	for i := range p.Status.AccessProviders {
		if p.Status.AccessProviders[i].Name == name {
			return &p.Status.AccessProviders[i]
		}
	}
	return nil
}

func hasAccessProvider(p *cpv1alpha1.ClusterProfile, name string) bool {
	return accessProvider(p, name) != nil
}

// watchProfile counts the writes of p after its current version, until the test ends.
func watchProfile(ctx context.Context, t *testing.T, cl client.WithWatch, p *cpv1alpha1.ClusterProfile, n *atomic.Int32) {
	t.Helper()
	w, err := cl.Watch(ctx, &cpv1alpha1.ClusterProfileList{}, client.InNamespace(p.Namespace),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: p.ResourceVersion, FieldSelector: "metadata.name=" + p.Name}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	go func() {
		for range w.ResultChan() {
			n.Add(1)
		}
	}()
}

// callResults are what a client calling B saw.
type callResults struct {
	calls, unauthorized, failures int
	firstErrs                     []string
}

// callEvery lists pods in B's team namespace every interval until stop.
func callEvery(ctx context.Context, stop <-chan struct{}, interval time.Duration, kc kubernetes.Interface) callResults {
	var r callResults
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return r
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := kc.CoreV1().Pods("team").List(cctx, metav1.ListOptions{})
		cancel()
		r.calls++
		switch {
		case err == nil:
		case apierrors.IsUnauthorized(err):
			r.unauthorized++
		default:
			r.failures++
		}
		if err != nil && len(r.firstErrs) < 5 {
			r.firstErrs = append(r.firstErrs, err.Error())
		}
	}
}
