package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/execcredential"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// execRecord is one run of `kubectl-mcsa credential` through the kubeconfig, as the wrapper
// script logged it: when, and what it printed.
type execRecord struct {
	at   time.Time
	cred clientauthv1.ExecCredential
}

func readExecLog(t *testing.T, path string) []execRecord {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []execRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		at, js, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("exec log line %q", sc.Text())
		}
		sec, err := strconv.ParseFloat(at, 64)
		if err != nil {
			t.Fatal(err)
		}
		var r execRecord
		r.at = time.Unix(0, int64(sec*1e9))
		if err := json.Unmarshal([]byte(js), &r.cred); err != nil {
			t.Fatalf("exec log: %v: %s", err, js)
		}
		out = append(out, r)
	}
	return out
}

// TestExecCredentialEndToEnd: a kubeconfig written by `kubeconfig NAME --exec` serves a client
// calling cluster B every 100 ms across forced rotations and past the first credential's
// expiration, with no 401: client-go runs the plugin once, caches the token until the
// credential's expirationTimestamp (75 % of the token's lifetime), then runs it again and gets
// the newest token.
func TestExecCredentialEndToEnd(t *testing.T) {
	// fixture.ForTest skips it under -short: it runs real control planes.
	const a, b, name, lifetime = "cluster1", "cluster2", "pod-lister", 600
	f := fixture.ForTest(t, fixture.Options{Clusters: []string{a, b}, Install: []string{a}, Bootstrap: []fixture.Link{{Target: a, Source: b}}, Log: t.Logf})
	ctx := t.Context()
	ca, cb := f.Cluster(a), f.Cluster(b)
	t.Setenv("KUBECACHEDIR", t.TempDir())

	// In B: team/pod-lister may list pods in team, and A may import it.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(cb.Namespaces(ctx, "team"))
	must(cb.CreateIfMissing(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name}}))
	must(cb.CreateIfMissing(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}}))
	must(cb.CreateIfMissing(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "team", Name: name}}}))
	must(f.Allow(ctx, a, b, "team", name))

	// In A: the import, with the shortest lifetime, Ready.
	must(ca.Namespaces(ctx, "app"))
	f.StartController(t, a)
	imp := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: b, Namespace: "team", Name: name, ExpirationSeconds: ptr.To[int64](lifetime)}}
	must(ca.Client.Create(ctx, imp))
	ready := func(i *v1alpha1.ServiceAccountImport) bool {
		return meta.IsStatusConditionTrue(i.Status.Conditions, v1alpha1.ConditionReady)
	}
	if got, err := fixture.WaitFor(ctx, ca.Client, imp, 2*time.Minute, ready); err != nil {
		t.Fatalf("%v; last seen: %+v", err, got)
	}

	// The plugin as users run it, behind a wrapper that logs each run and what it printed.
	dir := t.TempDir()
	bin, err := controlplane.BuildCommand("./plugin/cmd/kubectl-mcsa", dir)
	must(err)
	execLog := filepath.Join(dir, "exec.log")
	wrapper := filepath.Join(dir, "kubectl-mcsa-logged")
	must(os.WriteFile(wrapper, []byte(fmt.Sprintf(`#!/bin/sh
out=$(%q "$@") || exit $?
printf '%%s %%s\n' "$(date +%%s.%%N)" "$out" >> %q
printf '%%s\n' "$out"
`, bin, execLog)), 0o755))

	out, errOut, err := run(t, f.Kubeconfig, "kubeconfig", name, "--exec", "--exec-command", wrapper, "-n", "app", "--context", a, "--kubeconfig", f.Kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig --exec: %v\n%s", err, errOut)
	}
	kubeconfig := filepath.Join(dir, "exec.kubeconfig")
	must(os.WriteFile(kubeconfig, []byte(out), 0o600))
	t.Logf("kubeconfig --exec:\n%s", out)

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	must(err)
	kc := kubernetes.NewForConfigOrDie(cfg)

	// One call to B every 100 ms, until the first credential has expired and client-go has
	// run the plugin again (or a deadline).
	type result struct{ calls, unauthorized, failures int }
	stop := make(chan struct{})
	done := make(chan result, 1)
	var firstErrs []string
	go func() {
		var r result
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- r
				return
			case <-tick.C:
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := kc.CoreV1().Pods("team").List(cctx, metav1.ListOptions{})
			cancel()
			r.calls++
			switch {
			case err == nil:
			case apierrors.IsUnauthorized(err):
				r.unauthorized++
			default:
				r.failures++
			}
			if err != nil && len(firstErrs) < 5 {
				firstErrs = append(firstErrs, err.Error())
			}
		}
	}()

	// The first credential: 75 % of the token's lifetime after it was issued.
	deadline := time.Now().Add(30 * time.Second)
	for len(readExecLog(t, execLog)) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	execs := readExecLog(t, execLog)
	if len(execs) == 0 {
		close(stop)
		t.Fatal("client-go never ran the plugin")
	}
	first := execs[0].cred
	claims, err := execcredential.ParseClaims(first.Status.Token)
	must(err)
	if got := claims.Expiry.Sub(claims.IssuedAt); got != lifetime*time.Second {
		t.Errorf("token lifetime %s, want %ds", got, lifetime)
	}
	exp1 := first.Status.ExpirationTimestamp
	if want := claims.IssuedAt.Add(lifetime * time.Second * 3 / 4); exp1 == nil || !exp1.Time.Equal(want) {
		t.Fatalf("expirationTimestamp %v, want %s (75 %% of %ds after iat %s)", exp1, want, lifetime, claims.IssuedAt)
	}
	t.Logf("first credential: iat %s, exp %s, expirationTimestamp %s", claims.IssuedAt.UTC().Format(time.RFC3339), claims.Expiry.UTC().Format(time.RFC3339), exp1.UTC().Format(time.RFC3339))

	// Three forced rotations while the client calls B.
	gen := func() int64 {
		got := &v1alpha1.ServiceAccountImport{}
		must(ca.Client.Get(ctx, client.ObjectKeyFromObject(imp), got))
		return got.Status.TokenGeneration
	}
	secretToken := func() string {
		s := &corev1.Secret{}
		must(ca.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: v1alpha1.SecretName(name)}, s))
		return string(s.Data[v1alpha1.SecretKeyToken])
	}
	tokens := map[string]bool{first.Status.Token: true}
	for i := range 3 {
		if _, errOut, err := run(t, f.Kubeconfig, "rotate", name, "-n", "app", "--context", a, "--wait", "--timeout", "60s"); err != nil {
			close(stop)
			t.Fatalf("rotation %d: %v\n%s", i+1, err, errOut)
		}
		tokens[secretToken()] = true
		time.Sleep(2 * time.Second)
	}
	if len(tokens) != 4 {
		t.Errorf("3 rotations made %d new tokens, want 3", len(tokens)-1)
	}
	latest := secretToken()
	t.Logf("3 rotations done (token generation %d); waiting for client-go to run the plugin again at %s", gen(), exp1.UTC().Format(time.RFC3339))

	// Past the first credential's expiration, client-go runs the plugin again on its next
	// request and gets the newest token. That is 75 % of a 600 s token away: only with
	// MCSA_LONG set (the long suites); `make test` checks the expiration it was given.
	long := os.Getenv("MCSA_LONG") != ""
	if long {
		deadline = exp1.Add(15 * time.Second)
		for time.Now().Before(deadline) && len(readExecLog(t, execLog)) < 2 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second) // more calls with the new token
	close(stop)
	r := <-done
	execs = readExecLog(t, execLog)
	t.Logf("%d calls to %s, %d 401s, %d other failures, %d plugin runs, %d forced rotations", r.calls, b, r.unauthorized, r.failures, len(execs), 3)
	if r.unauthorized != 0 || r.failures != 0 {
		t.Errorf("%d 401s and %d other failures in %d calls; first errors: %v", r.unauthorized, r.failures, r.calls, firstErrs)
	}
	// About five calls a second: through the rotations, and past the re-run when long.
	if minCalls := map[bool]int{false: 30, true: 1000}[long]; r.calls < minCalls {
		t.Errorf("only %d calls, want at least %d", r.calls, minCalls)
	}
	if long {
		checkSecondRun(t, execs, exp1.Time, latest, len(tokens), lifetime*time.Second)
	} else if len(execs) != 1 {
		t.Errorf("client-go ran the plugin %d times before the first credential's expiration, want once (rotations must not cause a run)", len(execs))
	}

	// The real kubectl with the same kubeconfig.
	testbin := os.Getenv("MCSA_TESTBIN_DIR")
	if testbin == "" {
		t.Log("MCSA_TESTBIN_DIR unset: skipping the real kubectl")
		return
	}
	kubectl := exec.CommandContext(ctx, filepath.Join(testbin, "kubectl"), "--kubeconfig", kubeconfig, "get", "pods", "-n", "team")
	kubectl.Env = append(os.Environ(), "KUBECACHEDIR="+t.TempDir(), "HOME="+t.TempDir())
	kout, err := kubectl.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get pods with the exec kubeconfig: %v\n%s", err, kout)
	}
	if !strings.Contains(string(kout), "No resources found in team namespace") {
		t.Errorf("kubectl get pods: %s", kout)
	}
	if n := len(readExecLog(t, execLog)); n != len(execs)+1 {
		t.Errorf("kubectl ran the plugin %d times, want once", n-len(execs))
	}
}

// checkSecondRun checks the plugin's second run: right after the first credential's
// expiration, with the newest token, whose expiration is again 75 % of its lifetime.
func checkSecondRun(t *testing.T, execs []execRecord, exp1 time.Time, latest string, rotations int, lifetime time.Duration) {
	t.Helper()
	if len(execs) < 2 {
		t.Fatalf("client-go ran the plugin %d times, want a second run after %s", len(execs), exp1.UTC().Format(time.RFC3339))
	}
	second := execs[1]
	if second.at.Before(exp1) || second.at.After(exp1.Add(2*time.Second)) {
		t.Errorf("second run at %s, want within 2s after the first credential's expiration %s (rotations must not cause a run)", second.at.UTC().Format(time.RFC3339Nano), exp1.UTC().Format(time.RFC3339))
	}
	if second.cred.Status.Token != latest {
		t.Errorf("the second run returned another token than the newest of the %d rotations", rotations)
	}
	c2, err := execcredential.ParseClaims(second.cred.Status.Token)
	if err != nil {
		t.Fatal(err)
	}
	if e := second.cred.Status.ExpirationTimestamp; e == nil || !e.Time.Equal(c2.IssuedAt.Add(lifetime*3/4)) {
		t.Errorf("second expirationTimestamp %v, want %s", e, c2.IssuedAt.Add(lifetime*3/4))
	}
}
