package importer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/internal/importer"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// serverCap is B's --service-account-max-token-expiration: shorter than the import asks for
// and than its grant allows (kube-apiserver accepts no less than an hour).
const serverCap = 2 * time.Hour

// tokenRequestAudit records every TokenRequest made in B, so that the test counts them on B's
// side, per service account.
const tokenRequestAudit = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  resources: [{group: "", resources: ["serviceaccounts/token"]}]
- level: None
`

// TestServerCappedLifetime: B's API server caps token lifetimes below what the import asks for
// (24 h) and what its grant allows (24 h). The importer follows the lifetime B granted: the
// import says it is capped, the refresh comes at 75–85 % of the 2 h granted (not of the 24 h
// asked, and not at once), reconciles in between make no TokenRequest, and the refresh when due
// is one TokenRequest, after which the next is again 75–85 % of 2 h away. B's audit log counts
// the TokenRequests; the importer's refresh-attempt metric must agree.
func TestServerCappedLifetime(t *testing.T) {
	dir := t.TempDir()
	auditPolicy, auditLog := filepath.Join(dir, "audit-policy.yaml"), filepath.Join(dir, "audit.log")
	must(t, os.WriteFile(auditPolicy, []byte(tokenRequestAudit), 0o600))
	e := newEnvWith(t, fixture.Options{
		Clusters:  []string{clusterA, clusterB},
		Install:   []string{clusterA},
		Bootstrap: []fixture.Link{{Target: clusterA, Source: clusterB}},
		ClusterOptions: func(name string) controlplane.Options {
			if name != clusterB {
				return controlplane.Options{}
			}
			return controlplane.Options{APIServerFlags: []string{
				"--service-account-max-token-expiration=" + serverCap.String(),
				"--audit-policy-file=" + auditPolicy, "--audit-log-path=" + auditLog,
			}}
		},
	})
	e.startImporter(t, importer.Options{})
	ctx := t.Context()

	// The cluster credential is capped by B too; it is refreshed on its own schedule, counted apart.
	cred := e.waitReason(t, &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: clusterB}}, v1alpha1.ReasonTokenIssued)
	t.Logf("credential: %s", ready(cred).Message)

	const namespace, remoteNS, remoteName = "app-cap", "team-cap", "reader"
	e.nsA(t, namespace)
	e.serviceAccountB(t, remoteNS, remoteName, nil)
	e.grantB(t, remoteNS, remoteName)
	must(t, e.f.AnchorWithPolicy(ctx, clusterA, clusterB, remoteNS, grant.Policy{MaxLifetime: 24 * time.Hour}, remoteName))
	requests := func() (importSA, all int) { return countTokenRequests(t, auditLog, remoteNS, remoteName) }
	attempts := func() int {
		return int(metricSum(t, "mcsa_import_refresh_attempts_total", map[string]string{"cluster": clusterB}))
	}
	reqBefore, allBefore := requests()
	attemptsBefore := attempts()

	imp := e.waitReason(t, e.createImport(t, namespace, "capped", clusterB, remoteNS, remoteName, ptr.To[int64](v1alpha1.MaxExpirationSeconds)), v1alpha1.ReasonTokenIssued)
	st := imp.Status
	issued, lifetime := st.LastRefreshTime.Time, st.ExpirationTimestamp.Sub(st.LastRefreshTime.Time)
	token := string(e.secret(t, imp).Data[v1alpha1.SecretKeyToken])
	jwtLifetime := jwtExpiry(t, token).Sub(issued)
	t.Logf("asked 86400 s under a 24h grant; B issued a token living %s (status), %s (JWT exp); Ready: %s", lifetime, jwtLifetime, ready(imp).Message)
	for what, d := range map[string]time.Duration{"status": lifetime, "JWT": jwtLifetime} {
		if d < serverCap-time.Minute || d > serverCap+time.Minute {
			t.Fatalf("token lifetime (%s) %s, want B's cap %s", what, d, serverCap)
		}
	}
	if msg := ready(imp).Message; !strings.Contains(msg, "capped at 2h0m0s") {
		t.Errorf("Ready message does not say the lifetime is capped at 2h: %s", msg)
	}
	if n, _ := requests(); n-reqBefore != 1 {
		t.Fatalf("%d TokenRequests in B for the new import, want 1", n-reqBefore)
	}

	// touch makes the importer reconcile the import (an unrelated annotation), n times.
	touches := 0
	touch := func(n int) {
		t.Helper()
		for range n {
			touches++
			before := metricSum(t, "controller_runtime_reconcile_total", map[string]string{"controller": "serviceaccountimport"})
			e.annotate(t, imp, "test.kubectl-mcsa.io/touch", strconv.Itoa(touches))
			must(t, wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
				return metricSum(t, "controller_runtime_reconcile_total", map[string]string{"controller": "serviceaccountimport"}) > before, nil
			}))
			time.Sleep(300 * time.Millisecond) // the reconcile counted may have been another's
		}
	}
	at := func(fraction float64) time.Time {
		return issued.Add(time.Duration(fraction * float64(lifetime)))
	}
	assertRequests := func(phase string, want int) {
		t.Helper()
		n, _ := requests()
		if n-reqBefore != want {
			t.Errorf("%s: %d TokenRequests in B for the import since it was created, want %d", phase, n-reqBefore, want)
		}
	}

	// Not at once: reconciles right after the first token make no TokenRequest.
	touch(5)
	assertRequests("5 reconciles right after issue", 1)

	// Not before 75 % of the 2 h granted.
	e.clock.set(at(0.745))
	touch(5)
	assertRequests("5 reconciles at 74.5 % of 2h", 1)
	if got := e.get(t, imp).Status.LastRefreshTime; !got.Time.Equal(issued) {
		t.Errorf("refreshed at 74.5 %% of the lifetime: lastRefreshTime %s, was %s", got, issued)
	}

	// By 85 % of 2 h (1h42m, where 80 % of the 24 h asked would be 19h12m): one refresh.
	e.clock.set(at(0.855))
	touch(1)
	imp = e.waitFor(t, imp, "refreshed on schedule", func(i *v1alpha1.ServiceAccountImport) bool {
		return i.Status.LastRefreshTime != nil && i.Status.LastRefreshTime.After(issued)
	})
	// B counts the new token's lifetime from its own clock, the status from the importer's, now
	// moved ahead by 1h42m: the token's own claims say what B granted, and the status records its
	// expiry.
	st = imp.Status
	token = string(e.secret(t, imp).Data[v1alpha1.SecretKeyToken])
	iat, exp := jwtTimes(t, token)
	t.Logf("refreshed %s after the first token (importer's clock); B issued a token living %s (JWT exp - iat)", st.LastRefreshTime.Sub(issued), exp.Sub(iat))
	if d := exp.Sub(iat); d != serverCap {
		t.Errorf("refreshed token lives %s, want %s", d, serverCap)
	}
	if !st.ExpirationTimestamp.Time.Equal(exp) {
		t.Errorf("status expirationTimestamp %s, the token's exp %s", st.ExpirationTimestamp, exp)
	}
	touch(5)
	assertRequests("past 85 % of 2h, then 5 reconciles", 2)

	// The importer's own count agrees with B's, the credential's refreshes included.
	_, all := requests()
	if got, want := attempts()-attemptsBefore, all-allBefore; got != want {
		t.Errorf("importer counted %d refresh attempts for %s, B answered %d TokenRequests", got, clusterB, want)
	}
	t.Logf("%d reconciles triggered; B answered %d TokenRequests for the import, %d in all", touches+1, 2, all-allBefore)
}

// jwtTimes are a token's iat and exp claims (unverified).
func jwtTimes(t *testing.T, token string) (iat, exp time.Time) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	must(t, err)
	var claims struct {
		Iat int64 `json:"iat"`
		Exp int64 `json:"exp"`
	}
	must(t, json.Unmarshal(payload, &claims))
	return time.Unix(claims.Iat, 0), time.Unix(claims.Exp, 0)
}

// countTokenRequests counts the TokenRequests B answered with a token (201), from its audit log:
// those for service account namespace/name, and all.
func countTokenRequests(t *testing.T, auditLog, namespace, name string) (forSA, all int) {
	t.Helper()
	b, err := os.ReadFile(auditLog)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0
	}
	must(t, err)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			Stage     string `json:"stage"`
			Verb      string `json:"verb"`
			ObjectRef *struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
				Namespace   string `json:"namespace"`
				Name        string `json:"name"`
			} `json:"objectRef"`
			ResponseStatus *struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
		}
		must(t, json.Unmarshal(sc.Bytes(), &ev))
		o := ev.ObjectRef
		if ev.Stage != "ResponseComplete" || ev.Verb != "create" || o == nil || o.Resource != "serviceaccounts" || o.Subresource != "token" ||
			ev.ResponseStatus == nil || ev.ResponseStatus.Code != 201 {
			continue
		}
		all++
		if o.Namespace == namespace && o.Name == name {
			forSA++
		}
	}
	must(t, sc.Err())
	return forSA, all
}

// metricSum is the sum of the counters or gauges named name with labels, in the
// controller-runtime metrics registry.
func metricSum(t *testing.T, name string, labels map[string]string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	must(t, err)
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
