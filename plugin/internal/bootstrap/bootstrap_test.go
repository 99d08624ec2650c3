package bootstrap

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// clusters are a fresh target cluster1 (with the ServiceAccountImport API) and source
// cluster2, and the options to bootstrap the first from the second.
func clusters(out *bytes.Buffer) (target, source *kubefake.Cluster, o *Options) {
	target, source = kubefake.New("cluster1"), kubefake.New("cluster2")
	source.Now = func() time.Time { return now }
	o = &Options{
		Target: target.Clients(), Source: source.Clients(),
		TargetName: "cluster1", SourceName: "cluster2",
		TokenTTL: 12 * time.Hour,
		UI:       ui.New(out),
	}
	return target, source, o
}

// lines is what the command prints of results.
func lines(results []kube.Result) []string {
	var s []string
	for _, r := range results {
		s = append(s, fmt.Sprintf("%s/%s %s", strings.ToLower(r.Object.GetKind()), r.Object.GetName(), r.Action))
	}
	return s
}

func TestRun(t *testing.T) {
	ns := grant.Namespace
	sourceObjects := []string{
		"ConfigMap/" + ns + "/" + grant.PoliciesName,
		"Namespace/" + ns,
		"Role.rbac.authorization.k8s.io/" + ns + "/mcsa-importer-ca:cluster1",
		"Role.rbac.authorization.k8s.io/" + ns + "/mcsa-importer-self:cluster1",
		"RoleBinding.rbac.authorization.k8s.io/" + ns + "/mcsa-importer-ca:cluster1",
		"RoleBinding.rbac.authorization.k8s.io/" + ns + "/mcsa-importer-self:cluster1",
		"Secret/" + ns + "/" + grant.AnchorName("cluster1", "cluster1"),
		"ServiceAccount/" + ns + "/cluster1",
		"ValidatingAdmissionPolicy.admissionregistration.k8s.io/" + grant.TokenPolicyName,
		"ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io/" + grant.TokenPolicyName,
	}
	targetObjects := []string{
		"Namespace/" + ns,
		"Secret/" + ns + "/" + v1alpha1.SecretName("cluster2"),
		"ServiceAccountImport.multicluster.admiralty.io/" + ns + "/cluster2",
	}
	tests := []struct {
		name          string
		allowAll      bool
		sourceServer  string
		wantServer    string
		sourceObjects []string
		warning       string
	}{
		{name: "least privilege", wantServer: "https://cluster2.example:6443", sourceObjects: sourceObjects},
		{name: "source server as the target's pods reach it", sourceServer: "https://cluster2.internal:6443", wantServer: "https://cluster2.internal:6443", sourceObjects: sourceObjects},
		{name: "allow all service accounts", allowAll: true, wantServer: "https://cluster2.example:6443",
			sourceObjects: append([]string{"ClusterRole.rbac.authorization.k8s.io/mcsa-import-all:cluster1", "ClusterRoleBinding.rbac.authorization.k8s.io/mcsa-import-all:cluster1"}, sourceObjects...),
			warning:       "--allow-all-service-accounts lets cluster1 import ANY service account of cluster2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			var out bytes.Buffer
			target, source, o := clusters(&out)
			o.AllowAllServiceAccounts, o.SourceServer = tt.allowAll, tt.sourceServer
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			res, err := o.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(source.Names(), "\n"); got != strings.Join(tt.sourceObjects, "\n") {
				t.Errorf("in the source:\n%s\nwant\n%s", got, strings.Join(tt.sourceObjects, "\n"))
			}
			if got := strings.Join(target.Names(), "\n"); got != strings.Join(targetObjects, "\n") {
				t.Errorf("in the target:\n%s\nwant\n%s", got, strings.Join(targetObjects, "\n"))
			}
			for _, l := range lines(res.Applied) {
				if !strings.HasSuffix(l, " created") {
					t.Errorf("first run: %s", l)
				}
			}
			if len(res.Applied) != len(tt.sourceObjects)+len(targetObjects) {
				t.Errorf("%d results for %d objects: %v", len(res.Applied), len(tt.sourceObjects)+len(targetObjects), lines(res.Applied))
			}
			// B enforces the credential's cap, and knows its API server's audiences.
			cm, err := source.Kube.CoreV1().ConfigMaps(ns).Get(ctx, grant.PoliciesName, metav1.GetOptions{})
			if err != nil || cm.Data[grant.PolicyKey("cluster1", "cluster1")] != "cluster1 cluster1 43200" {
				t.Errorf("credential's token policy: %v (%v)", cm, err)
			}
			vap, err := source.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, grant.TokenPolicyName, metav1.GetOptions{})
			if err != nil || !slices.ContainsFunc(vap.Spec.Variables, func(v admissionregistrationv1.Variable) bool { return v.Expression == `["https://cluster2"]` }) {
				t.Errorf("token policy admission: %v (%v)", vap, err)
			}
			if !res.Expiration.Equal(now.Add(12 * time.Hour)) {
				t.Errorf("expiration %v", res.Expiration)
			}
			if !strings.Contains(out.String(), tt.warning) || tt.warning == "" && strings.Contains(out.String(), "Warning") {
				t.Errorf("printed:\n%s\nwant the warning %q", out.String(), tt.warning)
			}

			// The importer identity may renew its own token and read B's published CA bundle,
			// nothing else.
			r, err := source.Kube.RbacV1().Roles(ns).Get(ctx, grant.SelfRenewName("cluster1"), metav1.GetOptions{})
			if err != nil || len(r.Rules) != 1 || strings.Join(r.Rules[0].Resources, ",") != "serviceaccounts/token" || strings.Join(r.Rules[0].ResourceNames, ",") != "cluster1" {
				t.Errorf("self-renew role: %+v, %v", r, err)
			}
			r, err = source.Kube.RbacV1().Roles(ns).Get(ctx, grant.CAReaderName("cluster1"), metav1.GetOptions{})
			if err != nil || len(r.Rules) != 1 || strings.Join(r.Rules[0].Verbs, ",") != "get" || strings.Join(r.Rules[0].Resources, ",") != "configmaps" || strings.Join(r.Rules[0].ResourceNames, ",") != grant.RootCAConfigMap {
				t.Errorf("CA reader role: %+v, %v", r, err)
			}
			if rb, err := source.Kube.RbacV1().RoleBindings(ns).Get(ctx, grant.CAReaderName("cluster1"), metav1.GetOptions{}); err != nil || len(rb.Subjects) != 1 || rb.Subjects[0] != grant.Subject("cluster1") {
				t.Errorf("CA reader binding: %+v, %v", rb, err)
			}
			// The credential: an import of the importer identity, renewed with TokenTTL.
			sai, err := (&imports.Client{Clients: target.Clients()}).Get(ctx, ns, "cluster2")
			if err != nil {
				t.Fatal(err)
			}
			if !v1alpha1.IsClusterCredential(sai, ns) || sai.Spec.Namespace != ns || sai.Spec.Name != "cluster1" || *sai.Spec.ExpirationSeconds != 12*3600 {
				t.Errorf("credential import: %+v", sai.Spec)
			}
			// Its secret: owned by the import, holding the token minted in the source.
			secret, err := target.Kube.CoreV1().Secrets(ns).Get(ctx, v1alpha1.SecretName("cluster2"), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !credential.OwnedBy(secret, sai) {
				t.Errorf("secret not controlled by the import: %+v", secret.OwnerReferences)
			}
			d := credential.Parse(secret.Data)
			if d.Server != tt.wantServer || string(d.CAData) != "CA of cluster2" || d.Namespace != ns || !strings.HasSuffix(d.Token, "."+kubefake.TokenID(1, ns, "cluster1", "cluster2")) {
				t.Errorf("credential: %+v", d)
			}
		})
	}
}

func TestRunAgain(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	target, source, o := clusters(&out)
	if _, err := o.Run(ctx); err != nil {
		t.Fatal(err)
	}
	sourceBefore, targetBefore := source.Names(), target.Names()

	// Nothing duplicated; only the credential's secret changes, for its new token.
	res, err := o.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"namespace/multicluster-service-account unchanged",
		"serviceaccount/cluster1 unchanged",
		"role/mcsa-importer-self:cluster1 unchanged",
		"rolebinding/mcsa-importer-self:cluster1 unchanged",
		"role/mcsa-importer-ca:cluster1 unchanged",
		"rolebinding/mcsa-importer-ca:cluster1 unchanged",
		"secret/" + grant.AnchorName("cluster1", "cluster1") + " unchanged",
		"validatingadmissionpolicy/" + grant.TokenPolicyName + " unchanged",
		"validatingadmissionpolicybinding/" + grant.TokenPolicyName + " unchanged",
		"configmap/" + grant.PoliciesName + " unchanged",
		"namespace/multicluster-service-account unchanged",
		"serviceaccountimport/cluster2 unchanged",
		"secret/" + v1alpha1.SecretName("cluster2") + " configured",
	}
	if got := lines(res.Applied); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("second run:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Join(source.Names(), " ") != strings.Join(sourceBefore, " ") || strings.Join(target.Names(), " ") != strings.Join(targetBefore, " ") {
		t.Errorf("second run changed the set of objects:\n%v\n%v", source.Names(), target.Names())
	}
	secret, _ := target.Kube.CoreV1().Secrets(grant.Namespace).Get(ctx, v1alpha1.SecretName("cluster2"), metav1.GetOptions{})
	if got := string(secret.Data[v1alpha1.SecretKeyToken]); !strings.HasSuffix(got, "."+kubefake.TokenID(2, grant.Namespace, "cluster1", "cluster2")) {
		t.Errorf("token after the second run: %s", got)
	}

	// Drift: the self-renew binding removed in the source is put back.
	if err := source.Kube.RbacV1().RoleBindings(grant.Namespace).Delete(ctx, grant.SelfRenewName("cluster1"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if res, err = o.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lines(res.Applied); got[3] != "rolebinding/mcsa-importer-self:cluster1 created" {
		t.Errorf("drift not repaired: %v", got)
	}

	// A cluster-wide grant left by an earlier run is reported, not silently kept.
	source.Add(grant.ClusterImportRoleBinding("cluster1"))
	out.Reset()
	if _, err := o.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Warning: cluster1 may still import every service account of cluster2 (an earlier --allow-all-service-accounts); revoke it with `kubectl mcsa disallow cluster1 --all-service-accounts --context cluster2`") {
		t.Errorf("no warning about the cluster-wide grant:\n%s", out.String())
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{"valid", func(*Options) {}, ""},
		{"target name", func(o *Options) { o.TargetName = "gke_p_z_c1" }, `cluster name "gke_p_z_c1" is not a DNS-1123 label: pass --target-name`},
		{"source name", func(o *Options) { o.SourceName = "Cluster2" }, `cluster name "Cluster2" is not a DNS-1123 label: pass --source-name`},
		{"same names", func(o *Options) { o.SourceName = "cluster1" }, `target and source are both named "cluster1": a cluster does not import from itself; pass --target-name or --source-name`},
		{"short lifetime", func(o *Options) { o.TokenTTL = 5 * time.Minute }, "--token-ttl 5m0s: must be from 10m0s to 12h0m0s"},
		{"long lifetime", func(o *Options) { o.TokenTTL = 25 * time.Hour }, "--token-ttl 25h0m0s: must be from 10m0s to 12h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, o := clusters(&bytes.Buffer{})
			tt.edit(o)
			err := o.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestRefusals are the refusals of Run: none writes anything anywhere.
func TestRefusals(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(target, source *kubefake.Cluster, o *Options)
		wantErr string
	}{
		{"not installed in the target", func(target, _ *kubefake.Cluster, _ *Options) { target.Unserve(v1alpha1.Resource) },
			"the ServiceAccountImport API is not installed in context \"cluster1\": run `kubectl mcsa install --context cluster1`"},
		{"an import of another cluster holds the name", func(target, _ *kubefake.Cluster, _ *Options) {
			target.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: grant.Namespace}},
				&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "cluster2", Namespace: grant.Namespace},
					Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster3", Namespace: "default", Name: "x"}})
		}, `import multicluster-service-account/cluster2 already exists in context "cluster1" and imports from cluster "cluster3", not "cluster2": it is not a cluster credential; rename it, or pass --source-name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, source, o := clusters(&bytes.Buffer{})
			tt.setup(target, source, o)
			targetBefore := target.Names()
			res, err := o.Run(context.Background())
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if len(res.Applied) != 0 || len(source.Names()) != 0 || strings.Join(target.Names(), " ") != strings.Join(targetBefore, " ") {
				t.Errorf("wrote before refusing: %v; source %v; target %v", lines(res.Applied), source.Names(), target.Names())
			}
		})
	}
}

// TestInsecureSource: a credential for a source reached without TLS verification would skip it
// too, so the target never gets one.
func TestInsecureSource(t *testing.T) {
	target, _, o := clusters(&bytes.Buffer{})
	o.Source.Config.Insecure = true
	_, err := o.Run(context.Background())
	if err == nil || err.Error() != `context "cluster2" skips TLS verification (insecure-skip-tls-verify): a credential for it would too; give the cluster a CA` {
		t.Fatalf("err = %v", err)
	}
	if names := target.Names(); len(names) != 0 {
		t.Errorf("the target got %v", names)
	}
}

// TestLoopbackSource: a source the kubeconfig reaches on loopback (kind, k3d, minikube) is
// refused before anything is written, with how to find the right URL, unless --source-server
// says where the target's pods reach it.
func TestLoopbackSource(t *testing.T) {
	for _, tc := range []struct {
		name, server, sourceServer string
		wantErr                    string
	}{
		{name: "IPv4 loopback", server: "https://127.0.0.1:41234", wantErr: "a loopback address: the target's pods would call themselves"},
		{name: "IPv6 loopback", server: "https://[::1]:6443", wantErr: "--source-server"},
		{name: "localhost", server: "https://localhost:8443", wantErr: "for kind, `https://cluster2-control-plane:6443`"},
		{name: "loopback, with --source-server", server: "https://127.0.0.1:41234", sourceServer: "https://127.0.0.1:41234"},
		{name: "not loopback", server: "https://10.0.0.7:6443"},
		{name: "--source-server not a URL", server: "https://10.0.0.7:6443", sourceServer: "cluster2:6443", wantErr: "want https://HOST[:PORT]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, source := kubefake.New("cluster1"), kubefake.New("cluster2")
			source.ServerURL = tc.server
			o := &Options{Target: target.Clients(), Source: source.Clients(), TargetName: "cluster1", SourceName: "cluster2",
				SourceServer: tc.sourceServer, TokenTTL: time.Hour, UI: ui.New(&bytes.Buffer{})}
			_, err := o.Run(context.Background())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Run() = %v, want %q", err, tc.wantErr)
			}
			if tc.wantErr != "" && (len(source.Names()) != 0 || len(target.Names()) != 0) {
				t.Errorf("written before the refusal: %v %v", source.Names(), target.Names())
			}
		})
	}
}
