package inspect

import (
	"bytes"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(payload)) + "." + enc([]byte("sig"))
}

func TestDecodeToken(t *testing.T) {
	tests := []struct {
		name, token string
		check       func(*Claims) bool
		wantErr     bool
	}{
		{"bound to secret", jwt(`{"iss":"https://c2","sub":"system:serviceaccount:default:pod-lister","aud":["https://c2"],"exp":1800000000,"iat":1799996400,"kubernetes.io":{"namespace":"default","serviceaccount":{"name":"pod-lister","uid":"u"},"secret":{"name":"s","uid":"v"}}}`),
			func(c *Claims) bool {
				return c.BoundObject == "Secret/s" && c.ServiceAccount == "pod-lister" && c.Namespace == "default" && c.Expiry.Unix() == 1800000000 && len(c.Audiences) == 1
			}, false},
		{"audience as a string", jwt(`{"aud":"vault","exp":1}`), func(c *Claims) bool { return len(c.Audiences) == 1 && c.Audiences[0] == "vault" }, false},
		{"pod-bound with node", jwt(`{"kubernetes.io":{"pod":{"name":"p"},"node":{"name":"n"}}}`), func(c *Claims) bool { return c.BoundObject == "Pod/p" && c.Node == "n" }, false},
		{"not a JWT", "abc", nil, true},
		{"payload not base64", "a.%%%.c", nil, true},
		{"payload not JSON", "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeToken(tt.token)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !tt.check(c) {
				t.Fatalf("unexpected claims %+v", c)
			}
		})
	}
}

func TestPrintGolden(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	mark := func(ok bool) string {
		if ok {
			return "✓"
		}
		return "✗"
	}
	base := Report{
		Source: "import default/cluster2-default-pod-lister → cluster2/default/pod-lister (secret cluster2-default-pod-lister-token)",
		Claims: &Claims{Issuer: "https://cluster2.cluster.mcsa.test", Subject: "system:serviceaccount:default:pod-lister",
			Audiences: []string{"https://cluster2.cluster.mcsa.test"}, IssuedAt: now.Add(-10 * time.Minute), Expiry: now.Add(50 * time.Minute),
			Namespace: "default", ServiceAccount: "pod-lister"},
		Server:    "https://192.0.2.10:6443",
		CAs:       []Certificate{{Subject: "CN=kubectl-mcsa test CA", NotAfter: now.Add(3650 * 24 * time.Hour)}},
		Namespace: "default",
	}
	ok := base
	ok.Live = &Live{Username: "system:serviceaccount:default:pod-lister", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"},
		Rules: []Rule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}},
			{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}}},
		CanI: &Answer{Verb: "list", Resource: "pods", Namespace: "default", Allowed: true}}
	expired := base
	claims := *base.Claims
	claims.Expiry = now.Add(-5 * time.Minute)
	claims.BoundObject = "Secret/bound"
	expired.Claims = &claims
	expired.Live = &Live{Error: liveErrorUnauthorized}
	for name, r := range map[string]Report{"inspect.golden": ok, "inspect-expired.golden": expired} {
		var b bytes.Buffer
		r.Print(&b, now, mark)
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (rerun with -update)", err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("%s differs:\n%s", name, b.String())
		}
	}
}
