package cmd

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// TestGetSelectSortHeaders: -l, --sort-by and --no-headers behave as kubectl get's.
func TestGetSelectSortHeaders(t *testing.T) {
	c, connect := fakeCluster("cluster1")
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, imp := range []struct {
		name, team string
		expires    time.Duration
		seconds    int64
	}{{"a", "payments", 3 * time.Hour, 3600}, {"b", "search", time.Hour, 7200}, {"c", "payments", 2 * time.Hour, 600}} {
		c.Add(&v1alpha1.ServiceAccountImport{
			ObjectMeta: metav1.ObjectMeta{Name: imp.name, Namespace: "default", Labels: map[string]string{"team": imp.team}, CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
			Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "sa-" + imp.name, ExpirationSeconds: ptr.To(imp.seconds)},
			Status:     v1alpha1.ServiceAccountImportStatus{ExpirationTimestamp: ptr.To(metav1.NewTime(now.Add(imp.expires)))},
		})
	}
	tests := []struct {
		name               string
		selector, sortBy   string
		noHeaders          bool
		names              []string
		wantNames, wantErr string
		wantHeader         bool
	}{
		{name: "default order", wantNames: "a b c", wantHeader: true},
		{name: "selected", selector: "team=payments", wantNames: "a c", wantHeader: true},
		{name: "selected out", selector: "team!=payments", wantNames: "b", wantHeader: true},
		{name: "sorted by a time", sortBy: ".status.expirationTimestamp", wantNames: "b c a", wantHeader: true},
		{name: "sorted by a number, braces", sortBy: "{.spec.expirationSeconds}", wantNames: "c a b", wantHeader: true},
		{name: "sorted by a missing field: kept in order", sortBy: ".status.lastRefreshTime", wantNames: "a b c", wantHeader: true},
		{name: "no headers", noHeaders: true, wantNames: "a b c"},
		{name: "bad selector", selector: "team in (", wantErr: `-l "team in ("`},
		{name: "bad sort key", sortBy: "{.spec[", wantErr: "--sort-by"},
		{name: "names and a selector", selector: "team=x", names: []string{"a"}, wantErr: "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, out, _ := genericiooptions.NewTestIOStreams()
			o := NewGetOptions(streams, genericclioptions.NewConfigFlags(false))
			o.connect, o.now = connect, func() time.Time { return now }
			o.Selector, o.SortBy, o.NoHeaders = tt.selector, tt.sortBy, tt.noHeaders
			err := completeAndRun(t, o, func() error { return o.Complete(nil, tt.names) })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if hasHeader := strings.HasPrefix(lines[0], "NAME"); hasHeader != tt.wantHeader {
				t.Errorf("header %v, want %v:\n%s", hasHeader, tt.wantHeader, out.String())
			} else if hasHeader {
				lines = lines[1:]
			}
			for _, l := range lines {
				names = append(names, strings.Fields(l)[0])
			}
			if got := strings.Join(names, " "); got != tt.wantNames {
				t.Errorf("listed %q, want %q:\n%s", got, tt.wantNames, out.String())
			}
		})
	}
}
