package main_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// TestMetricsNeedAuthorization runs the controller with the shipped RBAC and checks who may
// scrape its metrics: nobody without a valid token, nobody whose identity lacks GET /metrics,
// and a service account bound to the shipped ClusterRole mcsa-metrics-reader.
func TestMetricsNeedAuthorization(t *testing.T) {
	const name = "metrics"
	f := fixture.ForTest(t, fixture.Options{Clusters: []string{name}, Install: []string{name}})
	ctx := context.Background()
	cs := f.Cluster(name).Clientset()

	token := func(sa string) string {
		t.Helper()
		if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	scraper, nosy := token("scraper"), token("nosy")
	_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "mcsa-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: "scraper"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // the controller binds it next
	f.StartController(t, name, "--metrics-bind-address="+addr, "--metrics-secure=true")

	// The serving certificate is self-signed; what is under test is who gets an answer.
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback, self-signed by design
	scrape := func(bearer string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	// Wait for the server, with the scraper's token: the first answers may come before the
	// controller's token reviews work.
	var code int
	var body string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		code, body, err = scrape(scraper)
		return err == nil && code == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("the scraper never got its metrics: last %d %q (%v)", code, body, err)
	}
	if !strings.Contains(body, "mcsa_import_refresh_attempts_total") && !strings.Contains(body, "controller_runtime_") {
		t.Errorf("the metrics lack the controller's own:\n%s", body)
	}

	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		// controller-runtime's filter answers 500 when the token review itself errs, as it does
		// for a string that is no JWT: refused all the same.
		{"not a token", "not-a-token", http.StatusInternalServerError},
		{"a service account without GET /metrics", nosy, http.StatusForbidden},
		{"the metrics reader", scraper, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, body, err := scrape(tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("status %d, want %d: %s", got, tc.want, fmt.Sprint(len(body))+" bytes")
			}
			if tc.want != http.StatusOK && strings.Contains(body, "mcsa_") {
				t.Errorf("a refused scrape got metrics:\n%s", body)
			}
		})
	}
}
