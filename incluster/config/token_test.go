package config

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// fakeAPI stands for the API server: it records the bearer tokens it receives, refuses revoked
// ones with 401, and can run a hook on a request (e.g. a rotation while it is in flight).
type fakeAPI struct {
	revoked map[string]bool
	sent    []string
	bodies  []string
	hook    func() // run once, on the next request, before answering it
}

func (f *fakeAPI) RoundTrip(req *http.Request) (*http.Response, error) {
	tok := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	f.sent = append(f.sent, tok)
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		_ = req.Body.Close()
		f.bodies = append(f.bodies, string(b))
	}
	if f.hook != nil {
		f.hook()
		f.hook = nil
	}
	status := http.StatusOK
	if f.revoked[tok] {
		status = http.StatusUnauthorized
	}
	return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
}

func TestTokenFileRoundTripper(t *testing.T) {
	type step struct {
		swap       []byte   // new token file content, written the kubelet's way before the request
		inPlace    []byte   // new token file content, written over the file itself
		revoke     []string // tokens the server refuses from now on
		rotateIn   []byte   // during the request: swap to this token and revoke the one sent
		body       string   // a POST body; GET if empty
		noGetBody  bool     // the body cannot be replayed
		header     string   // an Authorization header already set (by client-go)
		wantSent   []string // tokens the server received for this request, nil to skip
		wantLast   string   // the last token the server received, "" to skip
		wantStatus int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a swap is followed by the next request", []step{
			{wantSent: []string{"t1"}, wantStatus: 200},
			{swap: []byte("t2\n"), wantSent: []string{"t2"}, wantStatus: 200},
			{swap: []byte("t3"), revoke: []string{"t1", "t2"}, wantSent: []string{"t3"}, wantStatus: 200},
		}},
		{"client-go's stale header is replaced", []step{
			{swap: []byte("t2"), header: "Bearer t1", wantSent: []string{"t2"}, wantStatus: 200},
		}},
		{"revoked in flight: retried once with the new token, body replayed", []step{
			{rotateIn: []byte("t2"), body: `{"a":1}`, wantSent: []string{"t1", "t2"}, wantStatus: 200},
			{wantSent: []string{"t2"}, wantStatus: 200},
		}},
		{"revoked and not rotated: 401, no retry", []step{
			{revoke: []string{"t1"}, wantSent: []string{"t1"}, wantStatus: 401},
		}},
		{"revoked in flight, body not replayable: 401, no retry", []step{
			{rotateIn: []byte("t2"), body: "x", noGetBody: true, wantSent: []string{"t1"}, wantStatus: 401},
			{wantSent: []string{"t2"}, wantStatus: 200},
		}},
		{"an unusable file keeps the last token until a good one", []step{
			{swap: []byte(" \n"), wantSent: []string{"t1"}, wantStatus: 200},
			{swap: []byte("bad token"), wantSent: []string{"t1"}, wantStatus: 200},
			{swap: []byte("t3"), wantSent: []string{"t3"}, wantStatus: 200},
		}},
		{"rewritten in place, same size, old revoked", []step{
			{inPlace: []byte("t2"), revoke: []string{"t1"}, wantLast: "t2", wantStatus: 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "import")
			ca := testCA(t)
			files := importFiles(ca, "https://b.example", "ns", "t1")
			writeAtomic(t, dir, files)
			cfg, err := fileConfig("https://b.example", filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt"))
			if err != nil {
				t.Fatal(err)
			}
			api := &fakeAPI{revoked: map[string]bool{}}
			rt := cfg.WrapTransport(api)
			swap := func(tok []byte) {
				files["token"] = tok
				writeAtomic(t, dir, files)
			}
			for i, s := range tt.steps {
				if s.swap != nil {
					swap(s.swap)
				}
				if s.inPlace != nil {
					if err := os.WriteFile(filepath.Join(dir, "token"), s.inPlace, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				for _, tok := range s.revoke {
					api.revoked[tok] = true
				}
				if s.rotateIn != nil {
					api.hook = func() {
						api.revoked[api.sent[len(api.sent)-1]] = true
						swap(s.rotateIn)
					}
				}
				req, err := http.NewRequest(http.MethodGet, "https://b.example/api", nil)
				if s.body != "" {
					req, err = http.NewRequest(http.MethodPost, "https://b.example/api", strings.NewReader(s.body))
					if s.noGetBody {
						req.GetBody = nil
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				if s.header != "" {
					req.Header.Set("Authorization", s.header)
				}
				api.sent, api.bodies = nil, nil
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if err := resp.Body.Close(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if resp.StatusCode != s.wantStatus {
					t.Errorf("step %d: status %d, want %d", i, resp.StatusCode, s.wantStatus)
				}
				if s.wantSent != nil && !slices.Equal(api.sent, s.wantSent) {
					t.Errorf("step %d: server got tokens %q, want %q", i, api.sent, s.wantSent)
				}
				if s.wantLast != "" && api.sent[len(api.sent)-1] != s.wantLast {
					t.Errorf("step %d: server got tokens %q, want the last to be %q", i, api.sent, s.wantLast)
				}
				for _, b := range api.bodies {
					if b != s.body {
						t.Errorf("step %d: server got body %q, want %q", i, b, s.body)
					}
				}
				if req.Header.Get("Authorization") != s.header {
					t.Errorf("step %d: the caller's request was modified", i)
				}
			}
		})
	}
}

func TestTokenFileRoundTripperNoToken(t *testing.T) {
	tok := &fileToken{path: filepath.Join(t.TempDir(), "token")}
	rt := &tokenFileRoundTripper{token: tok, next: &fakeAPI{}}
	req, _ := http.NewRequest(http.MethodGet, "https://b.example/api", nil)
	if _, err := rt.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("RoundTrip with no token file: %v, want an error", err)
	}
}

// TestClientGoChain checks the wiring with a real client-go clientset and TLS: the WrapTransport
// runs inside client-go's BearerTokenFile round tripper and its token is the one sent.
func TestClientGoChain(t *testing.T) {
	var mu sync.Mutex
	valid := "t1"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := r.Header.Get("Authorization") == "Bearer "+valid
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`)
			return
		}
		_, _ = io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","items":[{"metadata":{"name":"p"}}]}`)
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	e := newTestEnv(t)
	dir := filepath.Join(e.root, "b")
	files := importFiles(ca, srv.URL, "ns", "t1")
	writeAtomic(t, dir, files)
	cfg, ns, err := ServiceAccountImportConfigAndNamespace()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"t1", "t2", "t3"} {
		if tok != "t1" {
			files["token"] = []byte(tok)
			writeAtomic(t, dir, files)
			mu.Lock()
			valid = tok // the previous token is revoked at once
			mu.Unlock()
		}
		pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatalf("with token %s: %v", tok, err)
		}
		if len(pods.Items) != 1 {
			t.Fatalf("got %d pods", len(pods.Items))
		}
	}
}

// TestFederatedClientGoChain checks a federated import end to end with a real client-go
// clientset and TLS: every request carries the pod's token from the file and impersonates the
// service account named in `as`, through rotations that revoke the previous token at once, in
// copies of the configuration too; a token import mounted beside it impersonates no one.
func TestFederatedClientGoChain(t *testing.T) {
	const as = "system:serviceaccount:ns:sa"
	type seen struct{ auth, impersonate []string }
	var mu sync.Mutex
	valid := map[string]bool{"Bearer t1": true, "Bearer token-import": true}
	var got []seen
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{auth: r.Header.Values("Authorization"), impersonate: r.Header.Values("Impersonate-User")})
		ok := len(r.Header.Values("Authorization")) == 1 && valid[r.Header.Get("Authorization")]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`)
			return
		}
		_, _ = io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","items":[{"metadata":{"name":"p"}}]}`)
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	e := newTestEnv(t)
	dir := filepath.Join(e.root, "federated")
	files := federatedFiles(ca, srv.URL, "ns", "t1\n", as+"\n")
	writeAtomic(t, dir, files)
	writeAtomic(t, filepath.Join(e.root, "token"), importFiles(ca, srv.URL, "ns", "token-import"))
	all, err := AllServiceAccountImportConfigsAndNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]*kubernetes.Clientset{}
	for name, cfg := range map[string]*rest.Config{
		"federated":         all["federated"].Config,
		"copy of federated": rest.CopyConfig(all["federated"].Config),
		"token import":      all["token"].Config,
	} {
		if clients[name], err = kubernetes.NewForConfig(cfg); err != nil {
			t.Fatal(err)
		}
	}
	list := func(client, wantAuth string, wantImpersonate []string) {
		t.Helper()
		mu.Lock()
		got = nil
		mu.Unlock()
		pods, err := clients[client].CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("%s: listing pods: %v", client, err)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []seen{{auth: []string{wantAuth}, impersonate: wantImpersonate}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: server saw %+v, want %+v", client, got, want)
		}
	}
	for _, tok := range []string{"t1", "t2", "t3"} {
		if tok != "t1" {
			files["token"] = []byte(tok + "\n") // the kubelet swaps the projected token
			writeAtomic(t, dir, files)
			mu.Lock()
			valid = map[string]bool{"Bearer " + tok: true, "Bearer token-import": true} // the previous one is revoked at once
			mu.Unlock()
		}
		list("federated", "Bearer "+tok, []string{as})
		list("copy of federated", "Bearer "+tok, []string{as})
		list("token import", "Bearer token-import", nil)
	}
}

// headerAPI stands for the API server at the round-tripper level: it records the credentials
// of each request and refuses the first one with 401 after running hook (a rotation in
// flight).
type headerAPI struct {
	auth, impersonate []string
	hook              func()
}

func (h *headerAPI) RoundTrip(req *http.Request) (*http.Response, error) {
	h.auth = append(h.auth, req.Header.Get("Authorization"))
	h.impersonate = append(h.impersonate, strings.Join(req.Header.Values("Impersonate-User"), ","))
	status := http.StatusOK
	if h.hook != nil {
		h.hook()
		h.hook = nil
		status = http.StatusUnauthorized
	}
	return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
}

// TestFederatedRetryKeepsImpersonation: a request refused with 401 because the token was
// rotated and revoked in flight is sent again with the new token, still impersonating.
func TestFederatedRetryKeepsImpersonation(t *testing.T) {
	const as = "system:serviceaccount:ns:sa"
	e := newTestEnv(t)
	dir := filepath.Join(e.root, "federated")
	files := federatedFiles(testCA(t), "https://b.example", "ns", "t1", as)
	writeAtomic(t, dir, files)
	cfg, _, err := ServiceAccountImportConfigAndNamespace()
	if err != nil {
		t.Fatal(err)
	}
	api := &headerAPI{hook: func() {
		files["token"] = []byte("t2")
		writeAtomic(t, dir, files)
	}}
	rt, err := rest.HTTPWrappersForConfig(cfg, api) // client-go's chain, without TLS
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://b.example/api/v1/namespaces/ns/pods", strings.NewReader("{}"))
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200 after the retry", resp.StatusCode)
	}
	if want := []string{"Bearer t1", "Bearer t2"}; !slices.Equal(api.auth, want) {
		t.Errorf("server got %q, want %q", api.auth, want)
	}
	if want := []string{as, as}; !slices.Equal(api.impersonate, want) {
		t.Errorf("server got Impersonate-User %q, want %q", api.impersonate, want)
	}
	if len(req.Header) != 0 {
		t.Errorf("the caller's request was modified: %v", req.Header)
	}
}
