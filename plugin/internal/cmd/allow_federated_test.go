package cmd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
)

func TestAllowFederatedOptions(t *testing.T) {
	c, connect := fakeCluster("cluster2")
	c.Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "pod-lister", Namespace: "default"}})
	fed := grant.FederatedName("cluster1", "default", "pod-lister")
	check := grant.FederatedCheckName("cluster1")
	steps := []struct {
		name    string
		revoke  bool
		into    []string
		wantOut string
	}{
		{name: "allow", into: []string{"team"}, wantOut: "role.rbac.authorization.k8s.io/" + fed + " created\n" +
			"rolebinding.rbac.authorization.k8s.io/" + fed + " created\n" +
			"clusterrole.rbac.authorization.k8s.io/" + fed + " created\n" +
			"clusterrolebinding.rbac.authorization.k8s.io/" + fed + " created\n" +
			"role.rbac.authorization.k8s.io/" + check + " created\n" +
			"rolebinding.rbac.authorization.k8s.io/" + check + " created\n" +
			"serviceaccount/default/pod-lister: namespaces [team] of cluster1 may now act as it (federated)\n"},
		{name: "allow every namespace", wantOut: "role.rbac.authorization.k8s.io/" + fed + " unchanged\n" +
			"rolebinding.rbac.authorization.k8s.io/" + fed + " configured\n" +
			"clusterrole.rbac.authorization.k8s.io/" + fed + " unchanged\n" +
			"clusterrolebinding.rbac.authorization.k8s.io/" + fed + " configured\n" +
			"role.rbac.authorization.k8s.io/" + check + " unchanged\n" +
			"rolebinding.rbac.authorization.k8s.io/" + check + " unchanged\n" +
			"serviceaccount/default/pod-lister: every namespace of cluster1 may now act as it (federated)\n"},
		{name: "disallow", revoke: true, wantOut: "clusterrolebinding.rbac.authorization.k8s.io/" + fed + " deleted\n" +
			"clusterrole.rbac.authorization.k8s.io/" + fed + " deleted\n" +
			"rolebinding.rbac.authorization.k8s.io/" + fed + " deleted\n" +
			"role.rbac.authorization.k8s.io/" + fed + " deleted\n" +
			"rolebinding.rbac.authorization.k8s.io/" + check + " deleted\n" +
			"role.rbac.authorization.k8s.io/" + check + " deleted\n"},
		{name: "disallow again", revoke: true},
	}
	for _, s := range steps {
		streams, _, out, errOut := genericiooptions.NewTestIOStreams()
		var err error
		if s.revoke {
			d := NewDisallowOptions(streams, genericclioptions.NewConfigFlags(false))
			d.connect, d.Grant.Federated, d.Grant.IntoNamespaces = connect, true, s.into
			err = completeAndRun(t, d, func() error { return d.Complete(nil, []string{"cluster1", "default/pod-lister"}) })
		} else {
			o := NewAllowOptions(streams, genericclioptions.NewConfigFlags(false))
			o.connect, o.Grant.Federated, o.Grant.IntoNamespaces = connect, true, s.into
			err = completeAndRun(t, o, func() error { return o.Complete(nil, []string{"cluster1", "default/pod-lister"}) })
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if out.String() != s.wantOut {
			t.Errorf("%s: stdout:\n%s\nwant\n%s", s.name, out.String(), s.wantOut)
		}
		if !s.revoke {
			if want := "Then, in cluster1: kubectl mcsa import cluster2/default/pod-lister --federated --wait"; !strings.Contains(errOut.String(), want) {
				t.Errorf("%s: stderr %q, want %q", s.name, errOut.String(), want)
			}
			if !strings.Contains(errOut.String(), grant.FederateCommand("cluster1", "cluster2")) {
				t.Errorf("%s: stderr %q does not name federate", s.name, errOut.String())
			}
		}
	}
	for _, n := range c.Names() {
		if strings.Contains(n, "cluster1") {
			t.Errorf("left behind: %s", n)
		}
	}
}

// TestFederatedRefusals: flags that make no sense together are refused before any request
// (the kubeconfig's cluster is unreachable).
func TestFederatedRefusals(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c2
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: c2
  context: {cluster: c2, user: u}
users:
- name: u
  user: {token: x}
current-context: c2
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"max-token-lifetime, even the default", []string{"allow", "cluster1", "default/sa", "--federated", "--max-token-lifetime", "1h"}, "--max-token-lifetime does not apply to --federated"},
		{"audiences", []string{"allow", "cluster1", "default/sa", "--federated", "--audiences", "vault"}, "--audiences does not apply to --federated"},
		{"namespace-wide", []string{"allow", "cluster1", "--federated", "--namespace-wide", "apps"}, "--namespace-wide does not apply to --federated"},
		{"disallow namespace-wide", []string{"disallow", "cluster1", "--federated", "--namespace-wide", "apps"}, "--namespace-wide does not apply to --federated"},
		{"disallow all", []string{"disallow", "cluster1", "--federated", "--all-service-accounts"}, "--all-service-accounts does not apply to --federated"},
		{"verbs without federated", []string{"allow", "cluster1", "default/sa", "--verbs", "get"}, "--verbs, --resources and --unconstrained-impersonation apply to --federated grants"},
		{"resources without federated", []string{"allow", "cluster1", "default/sa", "--resources", "pods"}, "apply to --federated grants"},
		{"unconstrained without federated", []string{"allow", "cluster1", "default/sa", "--unconstrained-impersonation"}, "apply to --federated grants"},
		{"unconstrained with verbs", []string{"allow", "cluster1", "default/sa", "--federated", "--unconstrained-impersonation", "--verbs", "get"}, "--verbs and --resources do not apply to it"},
		{"a wildcard verb", []string{"allow", "cluster1", "default/sa", "--federated", "--verbs", "*"}, `verb "*"`},
		{"an importer identity", []string{"allow", "cluster1", grant.Namespace + "/cluster3", "--federated"}, "refusing to grant " + grant.Namespace + "/cluster3: "},
		{"import with an audience", []string{"import", "c2/default/sa", "--federated", "--audience", "vault"}, "a federated import's pod tokens have the remote cluster's federation audience"},
		{"import for two hours", []string{"import", "c2/default/sa", "--federated", "--ttl", "2h"}, "a federated import's pod tokens live at most 1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, kubeconfig, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestImportFederatedOptions(t *testing.T) {
	c, connect := fakeCluster("cluster1")
	importAs := func(t *testing.T, federated, wait bool, args ...string) (string, error) {
		t.Helper()
		streams, _, out, _ := genericiooptions.NewTestIOStreams()
		o := newImportOptions(streams, connect)
		o.Federated, o.Wait, o.Timeout = federated, wait, 5*time.Second
		err := completeAndRun(t, o, func() error { return o.Complete(nil, args) })
		return out.String(), err
	}
	out, err := importAs(t, true, false, "cluster2/apps/reader")
	if err != nil || out != "serviceaccountimport.multicluster.admiralty.io/cluster2-apps-reader created\n" {
		t.Fatalf("import --federated: %q, %v", out, err)
	}
	sai := c.Object(v1alpha1.GroupVersion.WithKind("ServiceAccountImport"), "default", "cluster2-apps-reader")
	if mode, _, _ := unstructured.NestedString(sai.Object, "spec", "mode"); mode != string(v1alpha1.ModeFederated) {
		t.Errorf("spec.mode %q, want Federated", mode)
	}
	if out, err = importAs(t, true, false, "cluster2/apps/reader"); err != nil || !strings.HasSuffix(out, " unchanged\n") {
		t.Errorf("import --federated again: %q, %v", out, err)
	}
	// The mode is immutable: the other mode is refused with the way out, either way.
	want := "import \"cluster2-apps-reader\" already exists in namespace default as a Federated import, and an import's mode cannot change: delete it (`kubectl delete serviceaccountimports.multicluster.admiralty.io cluster2-apps-reader -n default --context cluster1`) and import again"
	if _, err = importAs(t, false, false, "cluster2/apps/reader"); err == nil || err.Error() != want {
		t.Errorf("token import over a federated one: %v\nwant %s", err, want)
	}
	c.Add(&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "tok", Namespace: "default"},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "apps", Name: "reader", Mode: v1alpha1.ModeToken}})
	for _, federated := range []bool{true, false} {
		streams, _, out, _ := genericiooptions.NewTestIOStreams()
		o := newImportOptions(streams, connect)
		o.Spec = v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "apps", Name: "reader"}
		o.Federated, o.Overwrite = federated, true
		err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"tok"}) })
		if federated && (err == nil || !strings.Contains(err.Error(), "as a Token import, and an import's mode cannot change")) {
			t.Errorf("federated import over a token one, even with --overwrite: %v", err)
		}
		// Without --federated, an explicit Token mode is no change.
		if !federated && (err != nil || !strings.HasSuffix(out.String(), " unchanged\n")) {
			t.Errorf("token import again: %q, %v", out.String(), err)
		}
	}

	// --wait: a federated import is ready with reason Federated, and has no token expiry.
	ready := func(status metav1.ConditionStatus, reason, message string) *v1alpha1.ServiceAccountImport {
		return &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "ready", Namespace: "default", Generation: 1},
			Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "apps", Name: "reader", Mode: v1alpha1.ModeFederated},
			Status: v1alpha1.ServiceAccountImportStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{{
				Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: 1}}}}
	}
	c.Add(ready(metav1.ConditionTrue, v1alpha1.ReasonFederated, "cluster2 lets default act as apps/reader"))
	streams, _, _, errBuf := genericiooptions.NewTestIOStreams()
	o := newImportOptions(streams, connect)
	o.Federated, o.Wait, o.Timeout = true, true, 5*time.Second
	o.Spec = v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "apps", Name: "reader"}
	if err := completeAndRun(t, o, func() error { return o.Complete(nil, []string{"ready"}) }); err != nil {
		t.Fatal(err)
	}
	errOut := errBuf.String()
	if !strings.Contains(errOut, "waiting for the importer to check the federation of default/ready") ||
		!strings.Contains(errOut, "ready: federated, pods act as apps/reader of cluster2 with tokens of their own") ||
		strings.Contains(errOut, "expires") || strings.Contains(errOut, "Warning") {
		t.Errorf("stderr:\n%s", errOut)
	}

	// A broken link: the wait reports the importer's reason and its message, which names the fix.
	fix := "cluster2 does not accept cluster1's tokens: run `kubectl mcsa federate cluster1 cluster2`"
	if err := c.Clients().Dynamic.Resource(v1alpha1.Resource).Namespace("default").Delete(context.Background(), "ready", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Add(ready(metav1.ConditionFalse, v1alpha1.ReasonIssuerNotTrusted, fix))
	streams, _, _, errBuf = genericiooptions.NewTestIOStreams()
	o = newImportOptions(streams, connect)
	o.Timeout, o.clients = 10*time.Second, c.Clients()
	o.Name = "ready"
	client := &imports.Client{Clients: o.clients}
	current, err := client.Get(context.Background(), "default", "ready")
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.wait(context.Background(), client, current, true)
	if err == nil || err.Error() != "import default/ready is not ready: "+v1alpha1.ReasonIssuerNotTrusted+": "+fix {
		t.Errorf("wait on a broken federation: %v", err)
	}
	if !strings.Contains(errBuf.String(), "Warning: "+v1alpha1.ReasonIssuerNotTrusted+": "+fix) {
		t.Errorf("stderr %q", errBuf.String())
	}
}

func TestImportTableFederated(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	items := []v1alpha1.ServiceAccountImport{{
		ObjectMeta: metav1.ObjectMeta{Name: "fed", Namespace: "default", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "apps", Name: "reader", Mode: v1alpha1.ModeFederated},
		// Whatever an importer may write there, a federated import imports no token.
		Status: v1alpha1.ServiceAccountImportStatus{ExpirationTimestamp: ptr.To(metav1.NewTime(now.Add(time.Hour)))},
	}}
	row := importTable(items, now).Rows[0].Cells
	if row[4] != "<federated>" {
		t.Errorf("expires %v, want <federated>", row[4])
	}
}

// newImportOptions are import's options as the command makes them, without -o.
func newImportOptions(streams genericiooptions.IOStreams, connect clientsFunc) *ImportOptions {
	o := NewImportOptions(streams, genericclioptions.NewConfigFlags(false))
	o.connect = connect
	o.printFlags.OutputFlagSpecified = func() bool { return false }
	return o
}

func TestCompleteList(t *testing.T) {
	complete := completeList(func(*cobra.Command) ([]string, error) { return grant.StandardVerbs(), nil })
	for _, tt := range []struct{ in, want string }{
		{"", strings.Join(grant.StandardVerbs(), " ")},
		{"de", "delete deletecollection"},
		{"get,li", "get,list"},
		{"list,get,", "list,get,watch list,get,create list,get,update list,get,patch list,get,delete list,get,deletecollection"},
		{"x", ""},
	} {
		got, directive := complete(nil, nil, tt.in)
		if strings.Join(got, " ") != tt.want || directive&cobra.ShellCompDirectiveNoFileComp == 0 {
			t.Errorf("completing %q: %q (%v), want %q", tt.in, got, directive, tt.want)
		}
	}
	// The verbs flag completes the standard verbs, through the command.
	out, _, err := run(t, "", "__complete", "allow", "cluster1", "default/sa", "--federated", "--verbs", "wa")
	if err != nil || !strings.HasPrefix(out, "watch\n") {
		t.Errorf("__complete --verbs: %q, %v", out, err)
	}
}
