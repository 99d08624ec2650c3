package cmd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// TestGitOpsEndToEnd: what bootstrap, allow and import print with --dry-run=client -o yaml|json,
// applied with the real kubectl (`kubectl apply -f -`), gives the objects that running them
// gives. Two pairs of control planes under the same cluster names: the commands run for real on
// cluster1 (importing) and cluster2; their dry-run output is applied to cluster3 (importing,
// named cluster1) and cluster4 (named cluster2). The sources share their API audiences, which
// bootstrap writes into the token policy.
func TestGitOpsEndToEnd(t *testing.T) {
	const audiences = "https://sources.mcsa.test"
	f := fixture.ForTest(t, fixture.Options{
		Clusters: []string{"cluster1", "cluster2", "cluster3", "cluster4"},
		CRD:      []string{"cluster1", "cluster3"},
		ClusterOptions: func(name string) controlplane.Options {
			switch name {
			case "cluster2", "cluster4":
				// cluster4's controller manager creates the service account default/default,
				// whose throwaway token tells the dry run the API audiences.
				return controlplane.Options{APIServerFlags: []string{"--api-audiences=" + audiences}, NoControllerManager: name == "cluster2"}
			}
			return controlplane.Options{NoControllerManager: true}
		},
		Log: t.Logf,
	})
	t.Setenv("KUBECACHEDIR", t.TempDir())
	ctx := context.Background()
	kubectl := kubectlBinary(t)
	mcsa := func(t *testing.T, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := run(t, f.Kubeconfig, args...)
		if err != nil {
			t.Fatalf("kubectl mcsa %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
		}
		return out, errOut
	}
	apply := func(t *testing.T, context, input string) {
		t.Helper()
		cmd := exec.Command(kubectl, "--kubeconfig", f.Kubeconfig, "--context", context, "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(input)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl --context %s apply -f -: %v\n%s\ninput:\n%s", context, err, b, input)
		}
	}
	clients := map[string]*kube.Clients{}
	for _, c := range []string{"cluster1", "cluster2", "cluster3", "cluster4"} {
		clients[c] = mustClients(t, f.Kubeconfig, c)
	}
	// counterpart is where the dry run's output went for each cluster the commands wrote in.
	counterpart := map[string]string{"cluster1": "cluster3", "cluster2": "cluster4"}
	// same checks that each object the command wrote in cluster (as its -o printed it) is, in
	// the counterpart, what the dry run's output made it.
	same := func(t *testing.T, cluster string, objs []*unstructured.Unstructured) {
		t.Helper()
		for _, u := range objs {
			want := liveObject(ctx, t, clients[cluster], u)
			got := liveObject(ctx, t, clients[counterpart[cluster]], u)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s/%s: applied from the dry run, it is\n%v\nwritten by the command, it is\n%v", u.GetKind(), u.GetNamespace(), u.GetName(), got, want)
			}
		}
	}
	// names are the objects' kinds and names, to compare what two outputs print.
	names := func(objs []*unstructured.Unstructured) []string {
		var s []string
		for _, u := range objs {
			s = append(s, u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName())
		}
		slices.Sort(s)
		return s
	}

	// The dry run of the sources needs a service account to learn their audiences from.
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := f.Cluster("cluster4").Clientset().CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal("no service account default/default in cluster4")
	}
	gitopsPair := []string{"bootstrap", "cluster3", "cluster4", "--target-name", "cluster1", "--source-name", "cluster2", "--source-server", f.Cluster("cluster4").Server}

	t.Run("bootstrap", func(t *testing.T) {
		out, errOut := mcsa(t, append(gitopsPair, "--dry-run=client", "-o", "yaml")...)
		if _, err := f.Cluster("cluster4").Clientset().CoreV1().Namespaces().Get(ctx, grant.Namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("the dry run wrote in the source: %v", err)
		}
		if !strings.Contains(errOut, "(dry run) not written: the credential's Secret") {
			t.Errorf("stderr:\n%s", errOut)
		}
		docs := strings.Split(out, "\n---\n")
		if len(docs) != 2 || !strings.HasPrefix(docs[0], "# cluster: cluster4 (the source, cluster2)\n") || !strings.HasPrefix(docs[1], "# cluster: cluster3 (the target, cluster1)\n") {
			t.Fatalf("want the source's List, then the target's:\n%s", out)
		}
		dry := decodePrinted(t, out)
		for _, l := range dry {
			checkPrinted(t, l.items)
		}
		apply(t, "cluster4", docs[0])
		apply(t, "cluster3", docs[1])

		out, _ = mcsa(t, "bootstrap", "cluster1", "cluster2", "--source-server", f.Cluster("cluster2").Server, "-o", "yaml")
		printed := decodePrinted(t, out)
		if len(printed) != 2 || !slices.Equal(names(printed[0].items), names(dry[0].items)) || !slices.Equal(names(printed[1].items), names(dry[1].items)) {
			t.Fatalf("bootstrap wrote other objects than its dry run printed:\n%s", out)
		}
		same(t, "cluster2", printed[0].items)
		same(t, "cluster1", printed[1].items)
		if got, want := labelled(ctx, t, f.Cluster("cluster4").Cluster), labelled(ctx, t, f.Cluster("cluster2").Cluster); !slices.Equal(got, want) || len(want) < 4 {
			t.Errorf("for cluster1, cluster4 holds %v, cluster2 %v", got, want)
		}

		// The target, as far as a dry run goes: all but the credential's Secret, which bootstrap
		// then writes, changing nothing else.
		secret := v1alpha1.SecretName("cluster2")
		if _, err := f.Cluster("cluster1").Clientset().CoreV1().Secrets(v1alpha1.DefaultNamespace).Get(ctx, secret, metav1.GetOptions{}); err != nil {
			t.Fatalf("bootstrap wrote no credential Secret: %v", err)
		}
		if _, err := f.Cluster("cluster3").Clientset().CoreV1().Secrets(v1alpha1.DefaultNamespace).Get(ctx, secret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("a credential Secret from the dry run: %v", err)
		}
		before := map[string]map[string]any{}
		for _, l := range dry {
			for _, u := range l.items {
				before[u.GetKind()+u.GetNamespace()+u.GetName()] = liveObject(ctx, t, clients[l.context], u)
			}
		}
		out, _ = mcsa(t, gitopsPair...)
		if !strings.Contains(out, "secret/"+secret+" created\n") {
			t.Errorf("bootstrap after the GitOps objects:\n%s", out)
		}
		for _, l := range dry {
			for _, u := range l.items {
				if got := liveObject(ctx, t, clients[l.context], u); !reflect.DeepEqual(got, before[u.GetKind()+u.GetNamespace()+u.GetName()]) {
					t.Errorf("bootstrap changed %s %s/%s applied from its dry run:\n%v", u.GetKind(), u.GetNamespace(), u.GetName(), got)
				}
			}
		}
	})

	t.Run("allow", func(t *testing.T) {
		for _, c := range []string{"cluster2", "cluster4"} {
			for _, sa := range []string{"pod-lister", "other"} {
				if _, err := f.Cluster(c).Clientset().CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		// An earlier grant, which allow merges with: written the same way in both sources.
		mcsa(t, "allow", "cluster1", "default/other", "--context", "cluster2")
		mcsa(t, "allow", "cluster1", "default/other", "--context", "cluster4")

		grantArgs := []string{"allow", "cluster1", "default/pod-lister", "--into-namespaces", "team-a", "--max-token-lifetime", "30m"}
		out, _ := mcsa(t, append(grantArgs, "--context", "cluster4", "--dry-run=client", "-o", "json")...)
		server, _ := mcsa(t, append(grantArgs, "--context", "cluster4", "--dry-run=server", "-o", "json")...)
		if server != out {
			t.Errorf("--dry-run=server prints\n%s\n--dry-run=client\n%s", server, out)
		}
		if _, err := f.Cluster("cluster4").Clientset().CoreV1().Secrets("default").Get(ctx, grant.AnchorName("cluster1", "pod-lister"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("the dry runs wrote the anchor: %v", err)
		}
		dry := decodePrinted(t, out)
		checkPrinted(t, dry[0].items)
		apply(t, "cluster4", out)

		out, _ = mcsa(t, append(grantArgs, "--context", "cluster2", "-o", "json")...)
		printed := decodePrinted(t, out)
		if !slices.Equal(names(printed[0].items), names(dry[0].items)) || !slices.Contains(names(printed[0].items), "ServiceAccount default/pod-lister") {
			t.Fatalf("allow wrote %v, its dry run printed %v", names(printed[0].items), names(dry[0].items))
		}
		same(t, "cluster2", printed[0].items)
		if got, want := labelled(ctx, t, f.Cluster("cluster4").Cluster), labelled(ctx, t, f.Cluster("cluster2").Cluster); !slices.Equal(got, want) {
			t.Errorf("for cluster1, cluster4 holds %v, cluster2 %v", got, want)
		}
	})

	t.Run("import", func(t *testing.T) {
		out, _ := mcsa(t, "import", "cluster2/default/pod-lister", "--ttl", "20m", "-n", "default", "--context", "cluster3", "--dry-run=client", "-o", "yaml")
		dry := decodePrinted(t, out)
		checkPrinted(t, dry[0].items)
		if l, err := clients["cluster3"].Dynamic.Resource(v1alpha1.Resource).Namespace("default").List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
			t.Fatalf("the dry run wrote an import: %v %v", l, err)
		}
		apply(t, "cluster3", out)
		mcsa(t, "import", "cluster2/default/pod-lister", "--ttl", "20m", "-n", "default", "--context", "cluster1")
		same(t, "cluster1", dry[0].items)
	})
}

// kubectlBinary is the harness's kubectl (hack/testbin), else the one on PATH.
func kubectlBinary(t *testing.T) string {
	t.Helper()
	if dir, err := controlplane.BinDir(); err == nil {
		if p := filepath.Join(dir, "kubectl"); isExecutable(p) {
			return p
		}
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl: build it with `hack/testbin/ensure.sh kubectl`")
	}
	return p
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// liveObject is u as cl's cluster holds it, without the fields the API server sets nor the
// annotation kubectl's client-side apply keeps; nil if it does not exist.
func liveObject(ctx context.Context, t *testing.T, cl *kube.Clients, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	r, err := cl.ResourceFor(u)
	if err != nil {
		t.Fatal(err)
	}
	live, err := r.Get(ctx, u.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	live = kube.WithoutServerFields(live)
	unstructured.RemoveNestedField(live.Object, "metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration")
	if a, _, _ := unstructured.NestedMap(live.Object, "metadata", "annotations"); len(a) == 0 {
		unstructured.RemoveNestedField(live.Object, "metadata", "annotations")
	}
	return live.Object
}

// labelled lists what c holds for cluster1, by the label of its grants.
func labelled(ctx context.Context, t *testing.T, c *controlplane.Cluster) []string {
	t.Helper()
	cs := c.Clientset()
	sel := metav1.ListOptions{LabelSelector: grant.Selector("cluster1").String()}
	var names []string
	roles, err := cs.RbacV1().Roles("").List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roles.Items {
		names = append(names, "role "+r.Namespace+"/"+r.Name)
	}
	bindings, _ := cs.RbacV1().RoleBindings("").List(ctx, sel)
	for _, b := range bindings.Items {
		names = append(names, "rolebinding "+b.Namespace+"/"+b.Name)
	}
	secrets, _ := cs.CoreV1().Secrets("").List(ctx, sel)
	for _, s := range secrets.Items {
		names = append(names, "secret "+s.Namespace+"/"+s.Name)
	}
	sas, _ := cs.CoreV1().ServiceAccounts("").List(ctx, sel)
	for _, sa := range sas.Items {
		names = append(names, "serviceaccount "+sa.Namespace+"/"+sa.Name)
	}
	slices.Sort(names)
	return names
}
