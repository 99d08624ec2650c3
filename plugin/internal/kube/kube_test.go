package kube

import (
	"strings"
	"testing"
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
