package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
)

// The commands' Options run here against fake clusters with test streams: Complete → Validate
// → Run, as their cobra commands call them.

func fakeCluster(name string) (*kubefake.Cluster, clientsFunc) {
	c := kubefake.New(name)
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	return c, func() (*kube.Clients, error) { return c.Clients(), nil }
}

type shape interface {
	Validate() error
	Run(context.Context) error
}

func completeAndRun(t *testing.T, o shape, complete func() error) error {
	t.Helper()
	if err := complete(); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return o.Run(context.Background())
}

func TestImportOptions(t *testing.T) {
	_, connect := fakeCluster("cluster1")
	for _, tt := range []struct {
		name, output, wantOut string
		hint                  bool
	}{
		{"creates", "", "serviceaccountimport.multicluster.admiralty.io/cluster2-default-pod-lister created\n", true},
		{"again", "", "serviceaccountimport.multicluster.admiralty.io/cluster2-default-pod-lister unchanged\n", true},
		{"-o name", "name", "serviceaccountimport.multicluster.admiralty.io/cluster2-default-pod-lister\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			o := NewImportOptions(streams, genericclioptions.NewConfigFlags(false))
			o.connect = connect
			o.printFlags.OutputFormat = &tt.output
			o.printFlags.OutputFlagSpecified = func() bool { return tt.output != "" }
			if err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"cluster2/default/pod-lister"}) }); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.wantOut {
				t.Errorf("stdout %q, want %q", out.String(), tt.wantOut)
			}
			hint := "Pods in namespace default get it mounted at " + v1alpha1.MountPath("cluster2-default-pod-lister")
			if strings.Contains(errOut.String(), hint) != tt.hint {
				t.Errorf("stderr %q", errOut.String())
			}
		})
	}
}

func TestGetOptions(t *testing.T) {
	c, connect := fakeCluster("cluster1")
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	c.Add(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister"}})
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewGetOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect, o.now = connect, func() time.Time { return now }
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, nil) }); err != nil {
		t.Fatal(err)
	}
	want := "NAME   CLUSTER    REMOTE               READY     EXPIRES   AGE\nx      cluster2   default/pod-lister   Unknown   <none>    60m\n"
	if out.String() != want || errOut.Len() != 0 {
		t.Errorf("stdout:\n%s\nwant\n%s\nstderr: %s", out.String(), want, errOut.String())
	}

	streams, _, out, _ = genericiooptions.NewTestIOStreams()
	o = NewGetOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect = connect
	o.AllNamespaces = true
	c.Unserve(v1alpha1.Resource)
	err := completeAndRun(t, o, func() error { return o.Complete(nil, nil) })
	if err == nil || !strings.Contains(err.Error(), "run `kubectl mcsa install --context cluster1`") || out.Len() != 0 {
		t.Errorf("without the API: %v, %q", err, out.String())
	}
}

func TestAllowOptions(t *testing.T) {
	c, connect := fakeCluster("cluster2")
	c.Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "pod-lister", Namespace: "default"}})
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewAllowOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect = connect
	o.Grant.IntoNamespaces = []string{"team-a"}
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"cluster1", "default/pod-lister"}) }); err != nil {
		t.Fatal(err)
	}
	name := grant.ImportName("cluster1")
	anchor := "secret/" + grant.AnchorName("cluster1", "pod-lister")
	want := "role.rbac.authorization.k8s.io/" + name + " created\nrolebinding.rbac.authorization.k8s.io/" + name + " created\n" + anchor + " created\n" +
		"configmap/" + grant.PoliciesName + " created\n" +
		"serviceaccount/default/pod-lister: namespaces [team-a] of cluster1 may now import it\n"
	if out.String() != want {
		t.Errorf("stdout:\n%s\nwant\n%s", out.String(), want)
	}
	if !strings.Contains(errOut.String(), "Next, in cluster1: kubectl mcsa import cluster2/default/pod-lister --wait") {
		t.Errorf("stderr %q", errOut.String())
	}

	// Validate refuses before connecting.
	o = NewAllowOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect = func() (*kube.Clients, error) { t.Fatal("connected"); return nil, nil }
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"cluster1"}) }); err == nil || !strings.Contains(err.Error(), "name service accounts") {
		t.Errorf("allow without service accounts: %v", err)
	}

	streams, _, out, _ = genericiooptions.NewTestIOStreams()
	d := NewDisallowOptions(streams, genericclioptions.NewConfigFlags(false))
	d.connect = connect
	if err := completeAndRun(t, d, func() error { return d.Complete(nil, []string{"cluster1", "default/pod-lister"}) }); err != nil {
		t.Fatal(err)
	}
	if want := anchor + " deleted\nconfigmap/" + grant.PoliciesName + " configured\nrolebinding.rbac.authorization.k8s.io/" + name + " deleted\nrole.rbac.authorization.k8s.io/" + name + " deleted\n"; out.String() != want {
		t.Errorf("disallow stdout:\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRevokeOptions(t *testing.T) {
	c, connect := fakeCluster("cluster2")
	c.Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "pod-lister", Namespace: "default"}})
	role, _ := grant.ImportRole("cluster1", "default", []string{"pod-lister"})
	c.Add(role, grant.ImportRoleBinding("cluster1", "default"), grant.Anchor("cluster1", "default", "pod-lister"))
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewRevokeOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect = connect
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"cluster1", "default/pod-lister"}) }); err != nil {
		t.Fatal(err)
	}
	anchor := "secret/" + grant.AnchorName("cluster1", "pod-lister")
	if want := anchor + " deleted\n" + anchor + " created\n"; out.String() != want {
		t.Errorf("stdout:\n%s\nwant\n%s", out.String(), want)
	}
	if !strings.Contains(errOut.String(), "stop working within 10 s") {
		t.Errorf("stderr %q", errOut.String())
	}
	o = NewRevokeOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect = func() (*kube.Clients, error) { t.Fatal("connected"); return nil, nil }
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"Cluster_1", "default/pod-lister"}) }); err == nil || !strings.Contains(err.Error(), "not a DNS-1123 label") {
		t.Errorf("revoke with a bad cluster name: %v", err)
	}
}

func TestInstallOptionsServerDryRun(t *testing.T) {
	c, connect := fakeCluster("cluster1")
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manifests.Namespace}})
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewInstallOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect, o.DryRun = connect, "server"
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, nil) }); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[0] != "namespace/"+manifests.Namespace+" configured (server dry run)" ||
		lines[1] != "customresourcedefinition.apiextensions.k8s.io/"+manifests.CRD+" created (server dry run)" ||
		lines[len(lines)-1] != "mutatingwebhookconfiguration.admissionregistration.k8s.io/"+manifests.WebhookConfiguration+" created (server dry run)" {
		t.Errorf("stdout:\n%s", out.String())
	}
	if strings.Contains(errOut.String(), "installed in") {
		t.Errorf("a dry run says it installed: %s", errOut.String())
	}
	if len(c.Names()) != 2 {
		t.Errorf("a dry run stored %v", c.Names())
	}

	// --dry-run=client needs no cluster.
	streams, _, out, _ = genericiooptions.NewTestIOStreams()
	o = NewInstallOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect, o.DryRun = func() (*kube.Clients, error) { t.Fatal("connected"); return nil, nil }, "client"
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, nil) }); err != nil || !strings.HasPrefix(out.String(), "apiVersion: v1\nkind: Namespace\n") {
		t.Errorf("client dry run: %v\n%.80s", err, out.String())
	}
}

func TestRotateOptions(t *testing.T) {
	c, connect := fakeCluster("cluster1")
	c.Add(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default"}})
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := NewRotateOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect = connect
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"x"}) }); err != nil {
		t.Fatal(err)
	}
	if out.String() != "serviceaccountimport.multicluster.admiralty.io/x refresh requested\n" {
		t.Errorf("stdout %q", out.String())
	}
	sai := c.Object(v1alpha1.GroupVersion.WithKind("ServiceAccountImport"), "default", "x")
	if sai.GetAnnotations()[v1alpha1.RefreshRequestedAnnotation] == "" {
		t.Errorf("no refresh requested: %v", sai.GetAnnotations())
	}
}

func TestKubeconfigOptions(t *testing.T) {
	c, connect := fakeCluster("cluster1")
	exp := metav1.NewTime(time.Now().Add(30 * time.Minute))
	c.Add(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default"},
		Spec:   v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister", ExpirationSeconds: ptr.To[int64](3600)},
		Status: v1alpha1.ServiceAccountImportStatus{ExpirationTimestamp: &exp}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.SecretName("x"), Namespace: "default"},
			Data: map[string][]byte{"token": []byte("t0k3n"), "server": []byte("https://cluster2:6443"), "namespace": []byte("default")}})
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewKubeconfigOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect = connect
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"x"}) }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server: https://cluster2:6443", "token: t0k3n", "current-context: cluster2", "namespace: default"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("kubeconfig lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), "The token expires in 2") {
		t.Errorf("stderr %q", errOut.String())
	}
}

func TestPrintResults(t *testing.T) {
	u := func(apiVersion, kind, name string) *kube.Result {
		r := &kube.Result{Action: kube.Created}
		obj, _ := kube.ToUnstructured(&metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}, ObjectMeta: metav1.ObjectMeta{Name: name}})
		r.Object = obj
		return r
	}
	var b bytes.Buffer
	results := []kube.Result{*u("v1", "ServiceAccount", "a"), *u("apps/v1", "Deployment", "b")}
	results[1].Action = kube.Unchanged
	if err := printResults(&b, results, false); err != nil || b.String() != "serviceaccount/a created\ndeployment.apps/b unchanged\n" {
		t.Errorf("printResults: %q, %v", b.String(), err)
	}
	b.Reset()
	if err := printResults(&b, results[:1], true); err != nil || b.String() != "serviceaccount/a created (server dry run)\n" {
		t.Errorf("printResults, dry run: %q, %v", b.String(), err)
	}
}
