package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestObjectName(t *testing.T) {
	tests := []struct{ in, want, wantErr string }{
		{in: "cluster2", want: "cluster2"},
		{in: "gke_my-project_europe-west1_prod", want: "gke-my-project-europe-west1-prod"},
		{in: "arn:aws:eks:eu-west-1:123456789012:cluster/prod", want: "arn-aws-eks-eu-west-1-123456789012-cluster-prod"},
		{in: "Kind-Cluster", want: "kind-cluster"},
		{in: strings.Repeat("a", 70) + "_prod", want: strings.Repeat("a", 58) + "-prod"},
		{in: "___", wantErr: "pass --source-name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ObjectName(tt.in, "--source-name")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ObjectName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNewNamesTheFix(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: ctx
  context: {cluster: c, user: u}
users:
- name: u
  user: {token: x}
current-context: ctx
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		context, want string
	}{
		{"ctx", ""},
		{"nope", "context \"nope\" does not exist (list contexts with `kubectl config get-contexts`)"},
	}
	for _, tt := range tests {
		cl, err := New(ForContext(kubeconfig, tt.context))
		if tt.want == "" {
			if err != nil || cl.Context != "ctx" || cl.ClusterName() != "c" || cl.Namespace != "default" || cl.Describe() != `context "ctx"` || cl.ContextFlag() != " --context ctx" {
				t.Errorf("%s: %+v, %v", tt.context, cl, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.context, err, tt.want)
		}
	}
	// What clientcmd reports when no context is chosen, and for a missing --cluster.
	for _, err := range []error{clientcmd.ErrNoContext, fmt.Errorf(`cluster "x" does not exist`)} {
		if got := ConfigError(err); !strings.HasSuffix(got.Error(), " (list contexts with `kubectl config get-contexts`)") {
			t.Errorf("ConfigError(%v) = %v", err, got)
		}
	}
}
