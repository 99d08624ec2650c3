package cmd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/podlister"
)

// TestEndToEnd drives every command through the root command against two real control
// planes, with the real controller running out of cluster against cluster1.
func TestEndToEnd(t *testing.T) {
	// Bare clusters: the test installs and bootstraps through the commands under test.
	f := fixture.ForTest(t, fixture.Options{Clusters: []string{"cluster1", "cluster2"}, Log: t.Logf})
	cs, kubeconfig := f.Clusters, f.Kubeconfig
	ctx := context.Background()
	// kubectl's and the plugin's discovery cache, here rather than in the user's ~/.kube.
	t.Setenv("KUBECACHEDIR", t.TempDir())
	c1, c2 := cs[0].Clientset(), cs[1].Clientset()
	mcsa := func(t *testing.T, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := run(t, kubeconfig, args...)
		if err != nil {
			t.Fatalf("kubectl mcsa %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
		}
		return out, errOut
	}
	mcsaErr := func(t *testing.T, args ...string) error {
		t.Helper()
		_, _, err := run(t, kubeconfig, args...)
		if err == nil {
			t.Fatalf("kubectl mcsa %s succeeded, want an error", strings.Join(args, " "))
		}
		return err
	}

	t.Run("missing CRD names the fix", func(t *testing.T) {
		err := mcsaErr(t, "get", "--context", "cluster1")
		if !strings.Contains(err.Error(), "run `kubectl mcsa install --context cluster1`") {
			t.Fatalf("error does not name the fix: %v", err)
		}
		err = mcsaErr(t, "bootstrap", "cluster1", "cluster2", "--source-server", f.Cluster("cluster2").Server)
		if !strings.Contains(err.Error(), "kubectl mcsa install --context cluster1") {
			t.Fatalf("bootstrap before install: %v", err)
		}
		// Nothing half-done: bootstrap checked the target before writing in the source.
		if _, err := c2.CoreV1().Namespaces().Get(ctx, grant.Namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("bootstrap wrote in the source before failing: %v", err)
		}
	})

	t.Run("install twice changes nothing the second time", func(t *testing.T) {
		out, _ := mcsa(t, "install", "--context", "cluster1")
		if !strings.Contains(out, "created") {
			t.Fatalf("first install created nothing:\n%s", out)
		}
		out, _ = mcsa(t, "install", "--context", "cluster1")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasSuffix(line, " unchanged") {
				t.Errorf("second install changed something: %s", line)
			}
		}
	})

	t.Run("rendered manifests pass server dry run", func(t *testing.T) {
		err := mcsaErr(t, "install", "--dry-run=server", "--context", "cluster2")
		if !strings.Contains(err.Error(), "needs namespace "+grant.Namespace+" to exist") {
			t.Fatalf("server dry run on a fresh cluster: %v", err)
		}
		if _, err := c2.Discovery().ServerResourcesForGroupVersion(v1alpha1.GroupVersion.String()); !apierrors.IsNotFound(err) {
			t.Fatalf("server dry run stored the CRD: %v", err)
		}
		// Where the namespace exists, every object passes the server's validation.
		out, _ := mcsa(t, "install", "--dry-run=server", "--context", "cluster1")
		if n := strings.Count(out, "(server dry run)"); n < 10 {
			t.Fatalf("server dry run validated %d objects:\n%s", n, out)
		}
	})

	f.StartController(t, "cluster1")

	// The harness's clusters listen on loopback, and the controller runs on this host: bootstrap
	// refuses the kubeconfig's loopback URL until --source-server says so.
	sourceServer := f.Cluster("cluster2").Server
	t.Run("bootstrap twice, drift repaired", func(t *testing.T) {
		if err := mcsaErr(t, "bootstrap", "cluster1", "cluster2"); !strings.Contains(err.Error(), "a loopback address") || !strings.Contains(err.Error(), "--source-server "+sourceServer) {
			t.Fatalf("bootstrap with a loopback source: %v", err)
		}
		mcsa(t, "bootstrap", "cluster1", "cluster2", "--source-server", sourceServer)
		// Drift: someone removes the self-renew binding in cluster2 and breaks the credential.
		if err := c2.RbacV1().RoleBindings(grant.Namespace).Delete(ctx, grant.SelfRenewName("cluster1"), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		out, _ := mcsa(t, "bootstrap", "--target-context", "cluster1", "--source-context", "cluster2", "--source-server", sourceServer)
		if !strings.Contains(out, "rolebinding.rbac.authorization.k8s.io/"+grant.SelfRenewName("cluster1")+" created") {
			t.Errorf("drift not repaired:\n%s", out)
		}
		sas, _ := c2.CoreV1().ServiceAccounts(grant.Namespace).List(ctx, metav1.ListOptions{LabelSelector: grant.Selector("cluster1").String()})
		roles, _ := c2.RbacV1().Roles(grant.Namespace).List(ctx, metav1.ListOptions{})
		secrets, _ := c1.CoreV1().Secrets(v1alpha1.DefaultNamespace).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.ImportNameKey + "=cluster2"})
		// Two roles: the self-renew one, and the reader of B's published CA bundle.
		if len(sas.Items) != 1 || len(roles.Items) != 2 || len(secrets.Items) != 1 {
			t.Fatalf("duplicates after two bootstraps: %d service accounts, %d roles (want 2), %d credential secrets", len(sas.Items), len(roles.Items), len(secrets.Items))
		}
		// Least privilege: the importer's identity in cluster2 may renew its own token only.
		cred := credential.Parse(secrets.Items[0].Data)
		remote := kubernetes.NewForConfigOrDie(cred.RESTConfig())
		if _, err := remote.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("the importer's identity can list secrets in cluster2: %v", err)
		}
	})

	// The pod-lister of the original getting-started, in cluster2.
	podlister.Create(t, f.Cluster("cluster2"), "default", true)

	const name = "cluster2-default-pod-lister"
	t.Run("import before allow reports Forbidden with the remedy", func(t *testing.T) {
		out, errOut := mcsa(t, "import", "cluster2/default/pod-lister", "--context", "cluster1")
		if !strings.Contains(out, name+" created") || !strings.Contains(errOut, v1alpha1.ImportNameKey+": "+name) {
			t.Fatalf("unexpected output:\n%s\n%s", out, errOut)
		}
		err := mcsaErr(t, "import", "cluster2/default/pod-lister", "--context", "cluster1", "--wait", "--timeout", "60s")
		if !strings.Contains(err.Error(), v1alpha1.ReasonForbidden) || !strings.Contains(err.Error(), "kubectl mcsa allow cluster1 default/pod-lister --context cluster2") {
			t.Fatalf("error does not say Forbidden with the allow command: %v", err)
		}
		// Same name, other service account: a collision, not an overwrite.
		err = mcsaErr(t, "import", name, "--cluster", "cluster2", "--remote-namespace", "default", "--service-account", "other", "--context", "cluster1")
		if !strings.Contains(err.Error(), "--overwrite") {
			t.Fatalf("collision error does not name --overwrite: %v", err)
		}
	})

	t.Run("allow makes it ready", func(t *testing.T) {
		mcsa(t, "allow", "cluster1", "default/pod-lister", "--context", "cluster2")
		_, errOut := mcsa(t, "import", "cluster2/default/pod-lister", "--context", "cluster1", "--wait", "--timeout", "60s")
		if !strings.Contains(errOut, "ready") {
			t.Fatalf("unexpected output: %s", errOut)
		}
		out, _ := mcsa(t, "get", "--context", "cluster1")
		if !strings.Contains(out, name) || !strings.Contains(out, "default/pod-lister") || !strings.Contains(out, "True") {
			t.Fatalf("get does not show the ready import:\n%s", out)
		}
		out, _ = mcsa(t, "get", name, "-o", "name", "--context", "cluster1")
		if strings.TrimSpace(out) != "serviceaccountimport.multicluster.admiralty.io/"+name {
			t.Fatalf("-o name: %q", out)
		}
		// -w: the current state (the watch's initial events), then changes; here it ends with
		// the request timeout, as kubectl get -w does.
		out, _ = mcsa(t, "get", "-w", "--request-timeout", "3s", "--context", "cluster1")
		if strings.Count(out, "NAME") != 1 || !strings.Contains(out, name) {
			t.Fatalf("get -w:\n%s", out)
		}
		// A change while watching: a refresh request, the importer's status write.
		requester := &imports.Client{Clients: mustClients(t, kubeconfig, "cluster1")}
		go func() {
			time.Sleep(time.Second)
			_, _ = requester.RequestRefresh(ctx, "default", name, time.Now()) // the output shows whether it happened
		}()
		out, _ = mcsa(t, "get", name, "-w", "--no-headers", "--request-timeout", "5s", "--context", "cluster1")
		if strings.Contains(out, "NAME") || strings.Count(out, name) < 2 {
			t.Fatalf("get NAME -w --no-headers, with a rotation meanwhile:\n%s", out)
		}
	})

	t.Run("argument completion", func(t *testing.T) {
		// Cobra's hidden __complete prints the candidates, then a ":directive" line.
		candidates := func(args ...string) []string {
			t.Helper()
			out, _ := mcsa(t, append([]string{"__complete"}, args...)...)
			var names []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if l != "" && !strings.HasPrefix(l, ":") {
					names = append(names, l)
				}
			}
			return names
		}
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"rotate", "--context", "cluster1", ""}, []string{name}},
			{[]string{"rotate", "--context", "cluster1", name, ""}, nil},
			{[]string{"get", "--context", "cluster1", ""}, []string{name}},
			{[]string{"get", "--context", "cluster1", name, ""}, nil},
			{[]string{"export", "--context", "cluster2", ""}, []string{"default", "pod-lister"}},
		} {
			if got := candidates(tc.args...); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("completing %q: %q, want %q", tc.args, got, tc.want)
			}
		}
	})

	t.Run("allow reviews broad rights with the real authorizer", func(t *testing.T) {
		// ops/root is a cluster admin of cluster2; default/pod-lister may only list pods.
		if _, err := c2.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ops"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c2.CoreV1().ServiceAccounts("ops").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "root"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c2.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-ops-root"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "ops", Name: "root"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err := mcsaErr(t, "allow", "cluster1", "--namespace-wide", "ops", "--context", "cluster2")
		if !strings.Contains(err.Error(), "refusing --namespace-wide ops: its service account ops/root may do anything (cluster-admin)") {
			t.Fatalf("namespace-wide grant of a cluster admin's namespace: %v", err)
		}
		_, errOut := mcsa(t, "allow", "cluster1", "ops/root", "--context", "cluster2")
		if !strings.Contains(errOut, "Warning: service account ops/root may do anything (cluster-admin) in context \"cluster2\"") {
			t.Fatalf("no warning for a cluster admin:\n%s", errOut)
		}
		mcsa(t, "disallow", "cluster1", "ops/root", "--context", "cluster2")
		if _, errOut = mcsa(t, "allow", "cluster1", "default/pod-lister", "--context", "cluster2"); strings.Contains(errOut, "Warning") {
			t.Fatalf("a warning for a service account that may list pods:\n%s", errOut)
		}
	})

	t.Run("inspect shows the remote identity and its rules", func(t *testing.T) {
		out, _ := mcsa(t, "inspect", name, "--can-i", "list,pods", "--context", "cluster1")
		for _, want := range []string{"decoded, NOT verified", "system:serviceaccount:default:pod-lister", cs[1].Issuer,
			"authenticated as system:serviceaccount:default:pod-lister", "list", "pods", "can-i list pods in default: yes"} {
			if !strings.Contains(out, want) {
				t.Errorf("inspect output lacks %q:\n%s", want, out)
			}
		}
		out, _ = mcsa(t, "inspect", name, "--can-i", "get,secrets", "-o", "json", "--context", "cluster1")
		if !strings.Contains(out, `"allowed": false`) {
			t.Errorf("the imported identity may read secrets:\n%s", out)
		}
		// A token revoked by deleting the secret it is bound to: the live check reports the
		// server's answer rather than failing.
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "short-lived"}}
		if _, err := c2.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		bound, err := c2.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bound"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := c2.CoreV1().ServiceAccounts("default").CreateToken(ctx, "short-lived", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: bound.Name, UID: bound.UID},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c2.CoreV1().Secrets("default").Delete(ctx, bound.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The API server learns of the deletion through its own informer: wait until it refuses
		// the token (at once for an unused token, once its informer has the deletion).
		revoked, err := kubernetes.NewForConfig(&rest.Config{Host: cs[1].Server, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: cs[1].CAData}})
		if err != nil {
			t.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := revoked.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			return apierrors.IsUnauthorized(err), nil
		})
		if err != nil {
			t.Fatalf("the token bound to a deleted secret still authenticates: %v", err)
		}
		dir := t.TempDir()
		for file, data := range map[string]string{"token": tr.Status.Token, "server": cs[1].Server, "ca.crt": string(cs[1].CAData), "namespace": "default"} {
			if err := os.WriteFile(filepath.Join(dir, file), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, _ = mcsa(t, "inspect", "--token-file", filepath.Join(dir, "token"))
		if !strings.Contains(out, "Bound to:") || !strings.Contains(out, "Secret/bound") || !strings.Contains(out, "refused the token (401 Unauthorized)") {
			t.Errorf("inspect of a revoked token:\n%s", out)
		}
	})

	t.Run("mounts", func(t *testing.T) {
		// Without a node the installed webhook is unreachable, and annotated pods would be
		// refused: pods are created here as the webhook would have mutated them.
		if err := c1.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, manifests.WebhookConfiguration, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		mounted := func(name string, containers ...string) *corev1.Pod {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{v1alpha1.ImportNameKey: "cluster2-default-pod-lister"}}}
			p.Spec.Volumes = []corev1.Volume{{Name: v1alpha1.VolumeName("cluster2-default-pod-lister"),
				VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: v1alpha1.SecretName("cluster2-default-pod-lister")}}}}
			for _, c := range containers {
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "example.invalid/x:v1",
					VolumeMounts: []corev1.VolumeMount{{Name: p.Spec.Volumes[0].Name, MountPath: v1alpha1.MountPath("cluster2-default-pod-lister"), ReadOnly: true}}})
			}
			return p
		}
		good := mounted("good", "main", "sidecar")
		bad := mounted("missing-mount", "main", "sidecar")
		bad.Spec.Containers[1].VolumeMounts = nil
		ghost := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ghost", Annotations: map[string]string{v1alpha1.ImportNameKey: "nope"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "example.invalid/x:v1"}}}}
		for _, p := range []*corev1.Pod{good, bad, ghost} {
			if _, err := c1.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		out, _ := mcsa(t, "mounts", "good", "--context", "cluster1")
		if !strings.Contains(out, "every import is mounted in every container") {
			t.Errorf("mounts of a correctly mutated pod:\n%s", out)
		}
		stdout, _, err := run(t, kubeconfig, "mounts", "missing-mount", "--context", "cluster1")
		if err == nil || !strings.Contains(stdout, "container sidecar lacks the mount") {
			t.Errorf("mounts of a pod missing a mount: %v\n%s", err, stdout)
		}
		stdout, _, err = run(t, kubeconfig, "mounts", "ghost", "--context", "cluster1")
		if err == nil || !strings.Contains(stdout, "import not found") || !strings.Contains(stdout, "kubectl mcsa import nope") {
			t.Errorf("mounts of a pod naming a missing import: %v\n%s", err, stdout)
		}
	})

	t.Run("doctor", func(t *testing.T) {
		check := func(t *testing.T, want ...string) string {
			t.Helper()
			out, _, err := run(t, kubeconfig, "doctor", "--context", "cluster1")
			if err == nil {
				t.Errorf("doctor found nothing wrong:\n%s", out)
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("doctor output lacks %q:\n%s", w, out)
				}
			}
			return out
		}
		// The webhook configuration was deleted by the mounts test.
		out := check(t, "✓ crd", "✗ webhook", "MutatingWebhookConfiguration "+manifests.WebhookConfiguration+" not found", "✓ cluster cluster2", "reachable at "+cs[1].Server)
		// Restore it, without a CA bundle.
		mcsa(t, "install", "--context", "cluster1")
		if strings.Contains(out, "cluster cluster2 grants") {
			t.Errorf("doctor reports grants missing while the import is allowed:\n%s", out)
		}
		w, err := c1.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, manifests.WebhookConfiguration, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(w.Webhooks[0].ClientConfig.CABundle) == 0 {
			check(t, "has no CA bundle")
		}
		// A remote grant removed: the importer may no longer renew its credential.
		if err := c2.RbacV1().RoleBindings(grant.Namespace).Delete(ctx, grant.SelfRenewName("cluster1"), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		check(t, "✗ cluster cluster2", "may not renew its own token", "kubectl mcsa bootstrap THIS_CONTEXT cluster2")
		mcsa(t, "bootstrap", "cluster1", "cluster2", "--source-server", sourceServer)
		// An invalid credential.
		secret, err := c1.CoreV1().Secrets(v1alpha1.DefaultNamespace).Get(ctx, v1alpha1.SecretName("cluster2"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		saved := secret.DeepCopy()
		secret.Data["token"] = []byte("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln")
		if _, err := c1.CoreV1().Secrets(v1alpha1.DefaultNamespace).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		check(t, "✗ cluster cluster2", "refuses the credential")
		// An expired one.
		secret, _ = c1.CoreV1().Secrets(v1alpha1.DefaultNamespace).Get(ctx, v1alpha1.SecretName("cluster2"), metav1.GetOptions{})
		secret.Data["token"] = []byte("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE2MDAwMDAwMDB9.c2ln")
		if _, err := c1.CoreV1().Secrets(v1alpha1.DefaultNamespace).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		check(t, "✗ cluster cluster2", "credential expired")
		saved.ResourceVersion = ""
		secret, _ = c1.CoreV1().Secrets(v1alpha1.DefaultNamespace).Get(ctx, v1alpha1.SecretName("cluster2"), metav1.GetOptions{})
		secret.Data = saved.Data
		if _, err := c1.CoreV1().Secrets(v1alpha1.DefaultNamespace).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, _, _ = run(t, kubeconfig, "doctor", "--all-contexts", "-o", "json")
		if !strings.Contains(out, `"context": "cluster2"`) || !strings.Contains(out, "source only: cluster1 may import") {
			t.Errorf("doctor --all-contexts:\n%s", out)
		}
	})

	t.Run("kubeconfig works with kubectl", func(t *testing.T) {
		out, _ := mcsa(t, "kubeconfig", name, "--context", "cluster1")
		path := filepath.Join(t.TempDir(), "remote.kubeconfig")
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("kubectl not on PATH")
		}
		b, err := exec.Command(kubectl, "--kubeconfig", path, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").CombinedOutput()
		if err != nil || string(b) != "system:serviceaccount:default:pod-lister" {
			t.Fatalf("kubectl auth whoami with the kubeconfig: %s %v", b, err)
		}
		if b, err := exec.Command(kubectl, "--kubeconfig", path, "get", "pods").CombinedOutput(); err != nil {
			t.Fatalf("kubectl get pods with the kubeconfig: %s %v", b, err)
		}
		if b, err := exec.Command(kubectl, "--kubeconfig", path, "get", "secrets").CombinedOutput(); err == nil {
			t.Fatalf("the imported identity can read secrets: %s", b)
		}
	})

	t.Run("rotate gives a new expiry", func(t *testing.T) {
		client := &imports.Client{Clients: mustClients(t, kubeconfig, "cluster1")}
		before, err := client.Get(ctx, "default", name)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // token timestamps have a one-second resolution
		_, errOut := mcsa(t, "rotate", name, "--wait", "--context", "cluster1")
		after, err := client.Get(ctx, "default", name)
		if err != nil {
			t.Fatal(err)
		}
		if !after.Status.ExpirationTimestamp.After(before.Status.ExpirationTimestamp.Time) || !strings.Contains(errOut, "new token issued") {
			t.Fatalf("expiry did not move: %v → %v (%s)", before.Status.ExpirationTimestamp, after.Status.ExpirationTimestamp, errOut)
		}
	})

	// importedToken is the token the import's secret holds now, checked to work in cluster2.
	importedToken := func(t *testing.T) string {
		t.Helper()
		s, err := c1.CoreV1().Secrets("default").Get(ctx, v1alpha1.SecretName(name), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tok := string(s.Data[v1alpha1.SecretKeyToken])
		if err := whoamiIn(ctx, cs[1], tok); err != nil {
			t.Fatalf("the imported token does not work in cluster2: %v", err)
		}
		return tok
	}
	// rejectedWithin waits until cluster2 answers 401 to tok, and says how long after start.
	rejectedWithin := func(t *testing.T, tok string, start time.Time, limit time.Duration) time.Duration {
		t.Helper()
		var last error
		err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, limit-time.Since(start), true, func(ctx context.Context) (bool, error) {
			last = whoamiIn(ctx, cs[1], tok)
			return apierrors.IsUnauthorized(last), nil
		})
		if err != nil {
			t.Fatalf("the token still authenticates %s after: %v", limit, last)
		}
		return time.Since(start)
	}

	// A cluster credential that no longer works (expired during a long outage, or revoked: its
	// anchor deleted here, which B answers the same way, 401) is named by the import and doctor
	// with the one command that repairs it; bootstrap again repairs it and leaves the imports be.
	t.Run("a dead cluster credential: the remedy is bootstrap, which keeps the imports", func(t *testing.T) {
		importedToken(t)
		if err := c2.CoreV1().Secrets(grant.Namespace).Delete(ctx, grant.AnchorName("cluster1", "cluster1"), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		remedy := "kubectl mcsa bootstrap cluster1 cluster2"
		var err error
		if err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(context.Context) (bool, error) {
			_, _, err = run(t, kubeconfig, "rotate", name, "--wait", "--timeout", "20s", "--context", "cluster1")
			return err != nil && strings.Contains(err.Error(), "rejected the importer's credential") && strings.Contains(err.Error(), remedy), nil
		}); err != nil {
			t.Fatalf("rotate with a dead credential does not name bootstrap: %v", err)
		}
		// B did not refuse the import, the importer lost its way to B: the token stays.
		if s, err := c1.CoreV1().Secrets("default").Get(ctx, v1alpha1.SecretName(name), metav1.GetOptions{}); err != nil || len(s.Data[v1alpha1.SecretKeyToken]) == 0 {
			t.Errorf("the import lost its token to a dead credential (%v)", err)
		}
		out, _, _ := run(t, kubeconfig, "doctor", "--context", "cluster1")
		if !strings.Contains(out, "refuses the credential") || !strings.Contains(out, "kubectl mcsa bootstrap") {
			t.Errorf("doctor does not name the dead credential and bootstrap:\n%s", out)
		}
		mcsa(t, "bootstrap", "cluster1", "cluster2", "--source-server", sourceServer)
		_, errOut := mcsa(t, "rotate", name, "--wait", "--timeout", "60s", "--context", "cluster1")
		if !strings.Contains(errOut, "new token issued") {
			t.Fatalf("rotate after bootstrap: %s", errOut)
		}
		if s, err := c1.CoreV1().Secrets("default").Get(ctx, v1alpha1.SecretName(name), metav1.GetOptions{}); err != nil || len(s.OwnerReferences) != 1 {
			t.Fatalf("the import's secret after bootstrap: %v %v", s, err)
		}
	})

	t.Run("revoke kills outstanding tokens, the next refresh works", func(t *testing.T) {
		old := importedToken(t)
		start := time.Now()
		out, _ := mcsa(t, "revoke", "cluster1", "default/pod-lister", "--context", "cluster2")
		anchor := "secret/" + grant.AnchorName("cluster1", "pod-lister")
		if !strings.Contains(out, anchor+" deleted") || !strings.Contains(out, anchor+" created") {
			t.Fatalf("revoke printed:\n%s", out)
		}
		t.Logf("token imported before revoke rejected %.1f s after it", rejectedWithin(t, old, start, 15*time.Second).Seconds())
		mcsa(t, "rotate", name, "--wait", "--timeout", "30s", "--context", "cluster1")
		if importedToken(t) == old {
			t.Fatal("same token after revoke and rotate")
		}
	})

	t.Run("disallow revokes the tokens and makes the next refresh Forbidden", func(t *testing.T) {
		old := importedToken(t)
		start := time.Now()
		mcsa(t, "disallow", "cluster1", "default/pod-lister", "--context", "cluster2")
		if _, err := c2.RbacV1().Roles("default").Get(ctx, grant.ImportName("cluster1"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("grant still there: %v", err)
		}
		if _, err := c2.CoreV1().Secrets("default").Get(ctx, grant.AnchorName("cluster1", "pod-lister"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("anchor still there: %v", err)
		}
		t.Logf("token imported before disallow rejected %.1f s after it", rejectedWithin(t, old, start, 15*time.Second).Seconds())
		err := mcsaErr(t, "rotate", name, "--wait", "--timeout", "30s", "--context", "cluster1")
		if !strings.Contains(err.Error(), v1alpha1.ReasonForbidden) {
			t.Fatalf("rotate after disallow: %v", err)
		}
		s, err := c1.CoreV1().Secrets("default").Get(ctx, v1alpha1.SecretName(name), metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the import's secret is gone: %v", err)
		}
		if _, ok := s.Data[v1alpha1.SecretKeyToken]; ok {
			t.Errorf("the refused token is still in the import's secret")
		}
	})

	t.Run("export applies in another cluster as a working credential", func(t *testing.T) {
		out, _ := mcsa(t, "export", "pod-lister", "-n", "default", "--context", "cluster2", "--as", "pushed", "--ttl", "1h")
		var secret corev1.Secret
		if err := yaml.Unmarshal([]byte(out), &secret); err != nil {
			t.Fatalf("export printed no Secret: %v\n%s", err, out)
		}
		if _, err := c1.CoreV1().Secrets("default").Create(ctx, &secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := c1.CoreV1().Secrets("default").Get(ctx, "pushed", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		remote := kubernetes.NewForConfigOrDie(credential.Parse(got.Data).RESTConfig())
		if _, err := remote.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatalf("the exported credential does not list pods in cluster2: %v", err)
		}
	})

	t.Run("disconnect leaves nothing of the pair in either cluster", func(t *testing.T) {
		// Grants of every kind, to be undone: named with a namespace restriction, namespace-wide.
		if _, err := c2.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "extra"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c2.CoreV1().ServiceAccounts("extra").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "worker"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		mcsa(t, "allow", "cluster1", "default/pod-lister", "--into-namespaces", "default", "--context", "cluster2")
		mcsa(t, "allow", "cluster1", "--namespace-wide", "extra", "--context", "cluster2")
		leftovers := func() []string {
			var left []string
			sel := metav1.ListOptions{LabelSelector: grant.Selector("cluster1").String()}
			roles, _ := c2.RbacV1().Roles("").List(ctx, sel)
			bindings, _ := c2.RbacV1().RoleBindings("").List(ctx, sel)
			secrets, _ := c2.CoreV1().Secrets("").List(ctx, sel)
			sas, _ := c2.CoreV1().ServiceAccounts("").List(ctx, sel)
			for _, r := range roles.Items {
				left = append(left, "role "+r.Namespace+"/"+r.Name)
			}
			for _, b := range bindings.Items {
				left = append(left, "rolebinding "+b.Namespace+"/"+b.Name)
			}
			for _, s := range secrets.Items {
				left = append(left, "secret "+s.Namespace+"/"+s.Name)
			}
			for _, sa := range sas.Items {
				left = append(left, "serviceaccount "+sa.Namespace+"/"+sa.Name)
			}
			cms, _ := c2.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + grant.PoliciesName})
			for _, cm := range cms.Items {
				for k, v := range cm.Data {
					if strings.HasPrefix(v, "cluster1 ") {
						left = append(left, "token policy "+cm.Namespace+"/"+k)
					}
				}
			}
			if sa, err := c2.CoreV1().ServiceAccounts("default").Get(ctx, "pod-lister", metav1.GetOptions{}); err == nil && strings.Contains(sa.Annotations[v1alpha1.AllowedImportersAnnotation], "cluster1/") {
				left = append(left, "allowed-importers entry of default/pod-lister")
			}
			var imps v1alpha1.ServiceAccountImportList
			if err := f.Cluster("cluster1").Client.List(ctx, &imps); err != nil {
				left = append(left, "imports: "+err.Error())
			}
			for _, i := range imps.Items {
				if i.Spec.ClusterName == "cluster2" {
					left = append(left, "import "+i.Namespace+"/"+i.Name)
				}
			}
			return left
		}
		before := leftovers()
		if len(before) < 8 {
			t.Fatalf("the pair has too few objects to test disconnect: %v", before)
		}
		mcsa(t, "disconnect", "cluster1", "cluster2", "--dry-run=server")
		if got := leftovers(); len(got) != len(before) {
			t.Fatalf("--dry-run=server deleted %d objects", len(before)-len(got))
		}
		if err := mcsaErr(t, "disconnect", "cluster1", "cluster2"); !strings.Contains(err.Error(), "pass --yes") {
			t.Fatalf("disconnect with imports and no answer: %v", err)
		}
		out, _ := mcsa(t, "disconnect", "cluster1", "cluster2", "--yes")
		if !strings.Contains(out, "serviceaccountimport.multicluster.admiralty.io/cluster2 deleted") {
			t.Errorf("disconnect printed:\n%s", out)
		}
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return len(leftovers()) == 0, nil
		})
		if err != nil {
			t.Fatalf("left after disconnect: %v", leftovers())
		}
		mcsa(t, "disconnect", "cluster1", "cluster2", "--yes") // nothing left to delete: not an error
	})

	t.Run("uninstall", func(t *testing.T) {
		out, errOut := mcsa(t, "uninstall", "--context", "cluster1")
		if !strings.Contains(out, "deployment.apps/mcsa-controller deleted") || !strings.Contains(errOut, "--delete-imports") {
			t.Fatalf("unexpected output:\n%s\n%s", out, errOut)
		}
		if _, err := c1.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.ControllerDeployment, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("deployment still there: %v", err)
		}
		if _, err := c1.CoreV1().Namespaces().Get(ctx, grant.Namespace, metav1.GetOptions{}); err != nil {
			t.Fatalf("namespace with the cluster credentials not kept: %v", err)
		}
		mcsa(t, "uninstall", "--delete-imports", "--context", "cluster1")
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			_, err := c1.Discovery().ServerResourcesForGroupVersion(v1alpha1.GroupVersion.String())
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Fatal("CRD still served after uninstall --delete-imports")
		}
	})
}

func mustClients(t *testing.T, kubeconfig, context string) *kube.Clients {
	t.Helper()
	cl, err := kube.New(kube.ForContext(kubeconfig, context))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// whoamiIn asks c who tok is (nil when it authenticates).
func whoamiIn(ctx context.Context, c *controlplane.Cluster, tok string) error {
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: c.Server, BearerToken: tok, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData}})
	if err != nil {
		return err
	}
	_, err = cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	return err
}
