package importer_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/config"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/internal/importer"
)

// TestServingCARotation: B's serving CA rotates with an overlap window, as B's administrators do
// it, and nobody bootstraps again:
//
//  1. B publishes old and new CAs in kube-root-ca.crt (its controller manager's --root-ca-file);
//  2. the importer writes both into the import's secret and the credential's;
//  3. B's API server serves with a certificate of the new CA;
//  4. B's API server restarts, so that every connection to it is new, the importer's included.
//
// Throughout, a client of the import's mounted files (the client library, with a new TLS
// connection per call, verified against ca.crt as it is then) calls B: not one call may fail.
// After the switch and after the restart, forced refreshes of the import and of the credential
// succeed, and a new import gets its token. Last, without the grant to read the bundle, nothing
// breaks.
func TestServingCARotation(t *testing.T) {
	e := newEnv(t)
	const recheck = 2 * time.Second
	e.startImporter(t, importer.Options{CABundleRecheck: recheck})
	ctx := t.Context()
	const namespace = "rotca"
	e.nsA(t, namespace)
	e.serviceAccountB(t, "teamca", "reader", nil)
	e.grantB(t, "teamca", "reader")
	imp := e.waitReason(t, e.createImport(t, namespace, "reader", clusterB, "teamca", "reader", nil), v1alpha1.ReasonTokenIssued)
	cred := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: clusterB}}
	oldCA := bytes.Clone(e.b.CAData)
	if got := e.secret(t, imp).Data[v1alpha1.SecretKeyCACert]; !bytes.Equal(got, oldCA) {
		t.Fatalf("before the rotation, ca.crt is not B's CA:\n%s", got)
	}

	// The pod: the import's secret projected as files (within 200 ms; the kubelet takes a minute
	// or more, which the overlap window must cover), and a client calling B with them.
	root := t.TempDir()
	t.Setenv(config.MountRootEnv, root)
	p := &pod{t: t, e: e, imp: imp, dir: filepath.Join(root, imp.Name), phase: "before the rotation"}
	must(t, p.project(ctx))
	p.start(ctx)
	defer p.stop()
	time.Sleep(time.Second)

	// 1. The new CA published, beside the old one.
	next, err := e.b.NewCA("serving-ca-2")
	must(t, err)
	newCA := next.PEM()
	holdsBoth := func(b []byte) bool { return bytes.Contains(b, oldCA) && bytes.Contains(b, newCA) }
	p.setPhase("overlap: old and new published")
	start := time.Now()
	must(t, e.b.TrustCAs(ctx, append(bytes.Clone(oldCA), newCA...)))
	published := time.Now()
	t.Logf("B publishes old and new CAs (controller manager restarted) in %s", published.Sub(start).Round(time.Millisecond))

	// 2. Both in the import's secret, the credential's, and the pod's files.
	e.waitSecret(t, imp, "ca.crt holds old and new CAs", func(d map[string][]byte) bool { return holdsBoth(d[v1alpha1.SecretKeyCACert]) })
	t.Logf("the import's secret holds both %s after B published them (recheck every %s)", time.Since(published).Round(time.Millisecond), recheck)
	e.waitSecret(t, cred, "credential's ca.crt holds old and new CAs", func(d map[string][]byte) bool { return holdsBoth(d[v1alpha1.SecretKeyCACert]) })
	must(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		b, err := os.ReadFile(filepath.Join(p.dir, v1alpha1.SecretKeyCACert))
		return err == nil && holdsBoth(b), nil
	}))
	kubeconfig, err := clientcmd.Load(e.secret(t, imp).Data[v1alpha1.SecretKeyConfig])
	must(t, err)
	if c := kubeconfig.Clusters[clusterB]; c == nil || !holdsBoth(c.CertificateAuthorityData) {
		t.Errorf("the import's kubeconfig does not trust both CAs: %+v", c)
	}
	time.Sleep(time.Second)

	// 3. B serves with the new CA; clients trusting only the old one fail from now on.
	p.setPhase("switched to the new CA")
	start = time.Now()
	must(t, e.b.ServeWith(ctx, next))
	t.Logf("B's API server serves a certificate of the new CA %s after its files changed (no restart)", time.Since(start).Round(time.Millisecond))
	if err := callB(ctx, oldCA, string(e.secret(t, imp).Data[v1alpha1.SecretKeyToken]), e.b.Server); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client trusting the old CA only, on a new connection: %v; want a certificate error", err)
	}
	time.Sleep(2 * time.Second)
	imp = e.forceRefresh(t, imp, "after-switch")
	e.forceRefresh(t, cred, "credential-after-switch")

	if strings.Contains(e.logs.tail(100000), "Cannot read the CA bundle") {
		t.Error("the importer could not read B's bundle during the rotation")
	}

	// 4. Every connection to B new: the importer's own client must trust the new CA too.
	p.pause()
	start = time.Now()
	must(t, e.b.StopComponent("kube-apiserver"))
	must(t, e.b.StartComponent(ctx, "kube-apiserver"))
	t.Logf("B's API server restarted in %s (the pod's client paused meanwhile)", time.Since(start).Round(time.Millisecond))
	p.setPhase("after B's API server restarted")
	p.resume()
	start = time.Now()
	imp = e.forceRefresh(t, imp, "after-restart")
	t.Logf("forced refresh of the import after the restart: done in %s", time.Since(start).Round(time.Millisecond))
	e.forceRefresh(t, cred, "credential-after-restart")
	e.serviceAccountB(t, "teamca", "late", nil)
	e.grantB(t, "teamca", "late")
	late := e.waitReason(t, e.createImport(t, namespace, "late", clusterB, "teamca", "late", nil), v1alpha1.ReasonTokenIssued)
	if got := e.whoami(t, string(e.secret(t, late).Data[v1alpha1.SecretKeyToken])); got != "system:serviceaccount:teamca:late" {
		t.Errorf("a new import's token authenticates as %q", got)
	}
	if !holdsBoth(e.secret(t, late).Data[v1alpha1.SecretKeyCACert]) {
		t.Errorf("a new import's ca.crt does not hold both CAs")
	}
	// The pod's client goes on with the refreshed token.
	must(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		b, err := os.ReadFile(filepath.Join(p.dir, v1alpha1.SecretKeyToken))
		return err == nil && string(b) == string(e.secret(t, imp).Data[v1alpha1.SecretKeyToken]), nil
	}))
	time.Sleep(2 * time.Second)

	// Without the grant to read the bundle (a bootstrap that predates it): logged once, and
	// nothing breaks; the secrets keep what the credential holds, both CAs.
	p.setPhase("without the grant to read the bundle")
	asAdminB, err := kubernetes.NewForConfig(e.b.Config)
	must(t, err)
	must(t, asAdminB.RbacV1().RoleBindings(grant.Namespace).Delete(ctx, grant.CAReaderName(clusterA), metav1.DeleteOptions{}))
	must(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return strings.Contains(e.logs.tail(1000), "forbids reading the CA bundle"), nil
	}))
	imp = e.forceRefresh(t, imp, "without-grant")
	time.Sleep(3 * recheck)
	if n := strings.Count(e.logs.tail(100000), "forbids reading the CA bundle"); n != 1 {
		t.Errorf("the missing grant logged %d times, want once", n)
	}
	for _, i := range []*v1alpha1.ServiceAccountImport{imp, cred} {
		if s := e.secret(t, i); !holdsBoth(s.Data[v1alpha1.SecretKeyCACert]) {
			t.Errorf("%s/%s: ca.crt lost a CA without the grant", i.Namespace, i.Name)
		}
	}

	p.stop()
	for _, ph := range p.phases {
		t.Logf("pod's calls %s: %d, failed %d", ph.name, ph.calls, ph.failed)
		if ph.calls == 0 {
			t.Errorf("no call %s", ph.name)
		}
	}
	if p.failed > 0 {
		t.Errorf("%d of the pod's calls failed; first: %s", p.failed, strings.Join(p.errs, "\n"))
	}
}

// waitSecret waits until the data of imp's secret satisfies cond.
func (e *env) waitSecret(t *testing.T, imp *v1alpha1.ServiceAccountImport, what string, cond func(map[string][]byte) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		s := e.secret(t, imp)
		return s != nil && cond(s.Data), nil
	})
	if err != nil {
		t.Fatalf("%s/%s: %s: %v", imp.Namespace, imp.Name, what, err)
	}
}

// forceRefresh asks for a refresh of imp (refresh-requested = value) and waits until it is done
// with a new token.
func (e *env) forceRefresh(t *testing.T, imp *v1alpha1.ServiceAccountImport, value string) *v1alpha1.ServiceAccountImport {
	t.Helper()
	imp = e.get(t, imp)
	before := string(e.secret(t, imp).Data[v1alpha1.SecretKeyToken])
	e.annotate(t, imp, v1alpha1.RefreshRequestedAnnotation, value)
	got := e.waitFor(t, imp, "refresh "+value+" done", func(i *v1alpha1.ServiceAccountImport) bool {
		c := ready(i)
		return i.Status.LastRefreshRequest == value && c != nil && c.Reason == v1alpha1.ReasonTokenIssued
	})
	token := string(e.secret(t, got).Data[v1alpha1.SecretKeyToken])
	if token == before {
		t.Fatalf("%s/%s: refresh %s: same token", imp.Namespace, imp.Name, value)
	}
	want := "system:serviceaccount:" + imp.Spec.Namespace + ":" + imp.Spec.Name
	if who := e.whoami(t, token); who != want {
		t.Errorf("%s/%s: token after refresh %s authenticates as %q, want %q", imp.Namespace, imp.Name, value, who, want)
	}
	return got
}

// pod stands for a pod that mounts an import: the secret's files, kept current, and a client of
// B calling it with them all along.
type pod struct {
	t   *testing.T
	e   *env
	imp *v1alpha1.ServiceAccountImport
	dir string

	mu     sync.Mutex
	phase  string
	phases []*phase
	paused bool
	failed int
	errs   []string
	done   chan struct{}
	wg     sync.WaitGroup
}

type phase struct {
	name          string
	calls, failed int
}

// project writes the secret's data into the pod's folder, each file replaced whole as the
// kubelet's atomic writer does.
func (p *pod) project(ctx context.Context) error {
	s, err := p.e.akube.CoreV1().Secrets(p.imp.Namespace).Get(ctx, v1alpha1.SecretName(p.imp.Name), metav1.GetOptions{})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	for k, v := range s.Data {
		if cur, err := os.ReadFile(filepath.Join(p.dir, k)); err == nil && bytes.Equal(cur, v) {
			continue
		}
		tmp := filepath.Join(p.dir, "."+k+".tmp")
		if err := os.WriteFile(tmp, v, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(p.dir, k)); err != nil {
			return err
		}
	}
	return nil
}

func (p *pod) start(ctx context.Context) {
	p.done = make(chan struct{})
	p.setPhase(p.phase)
	p.wg.Go(func() {
		for {
			select {
			case <-p.done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if err := p.project(ctx); err != nil && ctx.Err() == nil {
				p.t.Logf("projecting the secret: %v", err)
			}
		}
	})
	p.wg.Go(func() {
		for {
			select {
			case <-p.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			p.mu.Lock()
			paused := p.paused
			p.mu.Unlock()
			if paused {
				continue
			}
			err := p.call(ctx)
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			ph := p.phases[len(p.phases)-1]
			ph.calls++
			if err != nil {
				ph.failed++
				p.failed++
				if len(p.errs) < 5 {
					p.errs = append(p.errs, ph.name+": "+err.Error())
				}
			}
			p.mu.Unlock()
		}
	})
}

func (p *pod) stop() {
	p.mu.Lock()
	done := p.done
	p.done = nil
	p.mu.Unlock()
	if done != nil {
		close(done)
		p.wg.Wait()
	}
}

func (p *pod) setPhase(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase = name
	p.phases = append(p.phases, &phase{name: name})
}

func (p *pod) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
}

func (p *pod) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
}

// call calls B as the imported service account with the client library's configuration of the
// mounted import, on a new TLS connection verified against the mounted ca.crt as it is now:
// client-go would otherwise reuse a connection made before the switch, or a transport cached with
// the CA file's earlier content (it reads the file again at most every 5 minutes).
func (p *pod) call(ctx context.Context) error {
	cfg, _, err := config.NamedServiceAccountImportConfigAndNamespace(p.imp.Name)
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return err
	}
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	cfg.Transport, err = freshTransport(ca)
	if err != nil {
		return err
	}
	want := "system:serviceaccount:" + p.imp.Spec.Namespace + ":" + p.imp.Spec.Name
	if who, err := selfSubject(ctx, cfg); err != nil {
		return err
	} else if who != want {
		return fmt.Errorf("authenticated as %q, want %q", who, want)
	}
	return nil
}

// callB calls B with token, trusting ca, on a new connection.
func callB(ctx context.Context, ca []byte, token, server string) error {
	tr, err := freshTransport(ca)
	if err != nil {
		return err
	}
	_, err = selfSubject(ctx, &rest.Config{Host: server, BearerToken: token, Transport: tr})
	return err
}

// freshTransport makes a new TLS connection per request, trusting the CAs of ca only.
func freshTransport(ca []byte) (http.RoundTripper, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, errors.New("ca.crt holds no certificate")
	}
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}, nil
}

func selfSubject(ctx context.Context, cfg *rest.Config) (string, error) {
	cfg.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	ssr, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return ssr.Status.UserInfo.Username, nil
}
