package cmd

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./plugin/internal/cmd -run %s -update` to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (rerun with -update if intended):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// run drives the root command like a user, with test streams and an isolated kubeconfig.
func run(t *testing.T, kubeconfig string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("NO_COLOR", "1")
	if kubeconfig == "" {
		kubeconfig = filepath.Join(t.TempDir(), "missing-kubeconfig")
	}
	// Hermetic: the kubeconfig and discovery cache come from the test, never from the machine.
	t.Setenv("KUBECONFIG", kubeconfig)
	home := t.TempDir()
	t.Setenv("HOME", home)
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := NewRootCmd(streams)
	root.SetArgs(args)
	err = root.Execute()
	// Defaults that name the home folder (--cache-dir) read the same in every run.
	return strings.ReplaceAll(out.String(), home, "$HOME"), errOut.String(), err
}

// TestHelpGolden pins the help of the root command and of every command under it, found by
// walking the command tree so that a new command cannot go unchecked.
func TestHelpGolden(t *testing.T) {
	names := []string{""}
	for _, c := range NewRootCmd(genericiooptions.NewTestIOStreamsDiscard()).Commands() {
		names = append(names, c.Name())
	}
	if len(names) < 16 {
		t.Fatalf("the walk found %d commands: %v", len(names), names)
	}
	for _, c := range names {
		name := c
		if name == "" {
			name = "root"
		}
		t.Run(name, func(t *testing.T) {
			args := []string{"--help"}
			if c != "" {
				args = []string{c, "--help"}
			}
			out, _, err := run(t, "", args...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "kubectl mcsa") {
				t.Errorf("help does not read `kubectl mcsa`:\n%s", out)
			}
			golden(t, "help/"+name+".golden", []byte(out))
		})
	}
}

func TestRenderGolden(t *testing.T) {
	out, _, err := run(t, "", "render", "--image", "registry.local:5000/mcsa/mcsa-controller:v9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "image: registry.local:5000/mcsa/mcsa-controller:v9.9.9") {
		t.Error("rendered manifests do not use the --image override")
	}
	golden(t, "render.golden", []byte(out))

	dry, _, err := run(t, "", "install", "--dry-run", "--image", "registry.local:5000/mcsa/mcsa-controller:v9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	if dry != out {
		t.Error("install --dry-run=client prints something else than render")
	}
}

func TestImportTableGolden(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	items := []v1alpha1.ServiceAccountImport{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "cluster2-default-pod-lister", Namespace: "default", Generation: 1, CreationTimestamp: *ts(-2 * time.Hour)},
			Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister"},
			Status: v1alpha1.ServiceAccountImportStatus{
				Conditions:          []metav1.Condition{{Type: "Ready", Status: "True", Reason: "TokenIssued", Message: "token issued", ObservedGeneration: 1}},
				Secrets:             []corev1.ObjectReference{{Name: "cluster2-default-pod-lister-token"}},
				ExpirationTimestamp: ts(48 * time.Minute), LastRefreshTime: ts(-12 * time.Minute),
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "cluster3-kube-system-admin", Namespace: "team-a", Generation: 2, CreationTimestamp: *ts(-5 * time.Minute)},
			Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster3", Namespace: "kube-system", Name: "admin", ExpirationSeconds: ptr.To[int64](600)},
			Status: v1alpha1.ServiceAccountImportStatus{
				Conditions: []metav1.Condition{{Type: "Ready", Status: "False", Reason: "Forbidden", Message: "cluster3 has not granted cluster1 kube-system/admin: run `kubectl mcsa allow cluster1 kube-system/admin --context cluster3`", ObservedGeneration: 2}},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "default", Generation: 1, CreationTimestamp: *ts(-3 * time.Second)},
			Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "x"},
		},
	}
	for _, tt := range []struct {
		name string
		opts printers.PrintOptions
	}{
		{"table.golden", printers.PrintOptions{}},
		{"table-wide-all-namespaces.golden", printers.PrintOptions{Wide: true, WithNamespace: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printers.NewTablePrinter(tt.opts).PrintObj(importTable(items, now), &b); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}

func TestErrors(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: gke_proj_zone_c2
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: c2
  context: {cluster: gke_proj_zone_c2, user: u}
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
		{"unknown context", []string{"get", "--context", "nope"}, `context "nope"`},
		{"import missing fields", []string{"import", "x", "--cluster", "c2"}, "missing --remote-namespace, --service-account"},
		{"import bad short form", []string{"import", "a/b"}, `"a/b" is not CLUSTER/NAMESPACE/SERVICEACCOUNT`},
		{"import both forms", []string{"import", "c2/default/sa", "--cluster", "c2"}, "not both"},
		{"import bad cluster name", []string{"import", "x", "--cluster", "gke_proj", "--remote-namespace", "default", "--service-account", "sa"}, `cluster "gke_proj"`},
		{"import short ttl", []string{"import", "c2/default/sa", "--ttl", "5m"}, "must be from 10m0s to 24h0m0s"},
		{"bootstrap one arg", []string{"bootstrap", "c1"}, "give both TARGET_CONTEXT and SOURCE_CONTEXT"},
		{"bootstrap unknown context", []string{"bootstrap", "c1", "c2"}, `context "c1"`},
		{"allow without service accounts", []string{"allow", "cluster1"}, "name service accounts"},
		{"allow bad ref", []string{"allow", "cluster1", "pod-lister"}, `"pod-lister" is not NAMESPACE/SERVICEACCOUNT`},
		{"allow bad cluster", []string{"allow", "Cluster_1", "default/sa"}, "not a DNS-1123 label"},
		{"allow all is for disallow", []string{"disallow", "cluster1"}, "name service accounts"},
		{"into without names", []string{"allow", "cluster1", "--namespace-wide", "ns", "--into-namespaces", "a"}, "--into-namespaces applies to named"},
		// Refused before any request: the cluster here is unreachable.
		{"allow kube-system as a whole", []string{"allow", "cluster1", "--namespace-wide", "kube-system"}, "refusing --namespace-wide kube-system: "},
		{"allow an importer identity", []string{"allow", "cluster1", "multicluster-service-account/cluster3"}, "refusing to grant multicluster-service-account/cluster3: "},
		{"risk accepted without namespace-wide", []string{"allow", "cluster1", "default/sa", "--i-understand-namespace-wide-risk"}, "--i-understand-namespace-wide-risk applies to --namespace-wide"},
		{"install bad dry-run", []string{"install", "--dry-run=maybe"}, `--dry-run must be`},
		{"unreachable cluster", []string{"get", "--request-timeout", "2s"}, "127.0.0.1:1"},
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

func TestNoKubeconfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, _, err := run(t, "", "get")
	if err == nil || !strings.Contains(err.Error(), "no kubeconfig found: set KUBECONFIG or pass --kubeconfig") {
		t.Fatalf("got %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, _, err := run(t, "", "version", "--short")
	if err != nil || strings.TrimSpace(out) != "dev" {
		t.Fatalf("version --short = %q, %v", out, err)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, _, err := run(t, "", "completion", shell)
		if err != nil || len(out) < 100 {
			t.Fatalf("completion %s: %v (%d bytes)", shell, err, len(out))
		}
	}
	out, _, err := run(t, "", "__complete", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"bootstrap", "import", "rotate"} {
		if !strings.Contains(out, sub) {
			t.Errorf("completion of subcommands lacks %s:\n%s", sub, out)
		}
	}
}
