package inspect

import (
	"context"
	"encoding/pem"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
)

// remote answers as an API server answers the token of default/pod-lister, which may list pods.
func remote(refuse bool) *k8sfake.Clientset {
	cs := k8sfake.NewClientset()
	cs.PrependReactor("create", "selfsubjectreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		if refuse {
			return true, nil, apierrors.NewUnauthorized("token expired")
		}
		r := &authenticationv1.SelfSubjectReview{}
		r.Status.UserInfo.Username = "system:serviceaccount:default:pod-lister"
		r.Status.UserInfo.Groups = []string{"system:serviceaccounts", "system:authenticated"}
		return true, r, nil
	})
	cs.PrependReactor("create", "selfsubjectrulesreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectRulesReview).DeepCopy()
		if r.Spec.Namespace == "default" {
			r.Status.ResourceRules = []authorizationv1.ResourceRule{
				{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}},
				{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews"}},
			}
		}
		r.Status.Incomplete = true
		return true, r, nil
	})
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		at := r.Spec.ResourceAttributes
		r.Status.Allowed = at.Namespace == "default" && at.Verb == "list" && at.Group == "" && at.Resource == "pods" && at.Subresource == ""
		if !r.Status.Allowed {
			r.Status.Reason = "no RBAC rule " + at.Verb + " " + at.Resource + "/" + at.Subresource + " in group " + at.Group
		}
		return true, r, nil
	})
	return cs
}

func TestCheckLive(t *testing.T) {
	tests := []struct {
		name, namespace string
		canI            *CanI
		refuse          bool
		want            func(*Live) bool
	}{
		{"who and what", "default", nil, false, func(l *Live) bool {
			return l.Error == "" && l.Username == "system:serviceaccount:default:pod-lister" && len(l.Groups) == 2 && l.Incomplete &&
				len(l.Rules) == 2 && l.Rules[0].Resources[0] == "pods" && l.Rules[1].Resources[0] == "selfsubjectaccessreviews" && l.CanI == nil
		}},
		{"rules are the namespace's", "other", nil, false, func(l *Live) bool { return l.Error == "" && len(l.Rules) == 0 }},
		{"can-i yes", "default", &CanI{Verb: "list", Resource: "pods"}, false, func(l *Live) bool {
			return *l.CanI == Answer{Verb: "list", Resource: "pods", Namespace: "default", Allowed: true}
		}},
		{"can-i with a group and a subresource", "default", &CanI{Verb: "create", Resource: "deployments/scale.apps"}, false, func(l *Live) bool {
			return !l.CanI.Allowed && l.CanI.Reason == "no RBAC rule create deployments/scale in group apps"
		}},
		{"refused token", "default", &CanI{Verb: "list", Resource: "pods"}, true, func(l *Live) bool {
			return l.Error == liveErrorUnauthorized && l.Username == "" && l.CanI == nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Namespace: tt.namespace}
			r.checkLive(context.Background(), remote(tt.refuse), tt.canI)
			if r.Live == nil || !tt.want(r.Live) {
				t.Fatalf("live %+v", r.Live)
			}
		})
	}
}

func TestFromCredential(t *testing.T) {
	chain, _, err := certutil.GenerateSelfSignedCertKey("cluster2", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	certs, _ := certutil.ParseCertsPEM(chain)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[1].Raw})
	token := jwt(`{"iss":"https://c2","exp":1800000000,"kubernetes.io":{"namespace":"team-a","serviceaccount":{"name":"x"}}}`)

	r := FromCredential("secret default/s", credential.Data{Server: "https://c2:6443", CAData: ca, Token: token})
	if r.Source != "secret default/s" || r.Server != "https://c2:6443" || r.Claims == nil || r.Claims.Issuer != "https://c2" || r.ClaimsError != "" {
		t.Errorf("report %+v", r)
	}
	// Rules are reviewed in the service account's namespace, from the token without a namespace file.
	if r.Namespace != "team-a" {
		t.Errorf("namespace %q", r.Namespace)
	}
	if len(r.CAs) != 1 || !strings.HasPrefix(r.CAs[0].Subject, "CN=cluster2-ca@") || !r.CAs[0].NotAfter.Equal(certs[1].NotAfter) {
		t.Errorf("CAs %+v", r.CAs)
	}
	r = FromCredential("x", credential.Data{Namespace: "default", CAData: []byte("not PEM"), Token: "abc"})
	if r.Claims != nil || r.ClaimsError != "not a JSON web token (want three dot-separated parts)" || r.Namespace != "default" || r.CAs != nil {
		t.Errorf("report of a bad credential %+v", r)
	}
}

func TestParseCAs(t *testing.T) {
	a, _, _ := certutil.GenerateSelfSignedCertKey("a", nil, nil)
	cas, err := ParseCAs(append([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), a...))
	if err != nil || len(cas) != 2 {
		t.Fatalf("a chain of two after a key: %v, %v", cas, err)
	}
	if _, err := ParseCAs([]byte("nothing")); err == nil || !strings.HasPrefix(err.Error(), "CA bundle: ") {
		t.Errorf("no certificate: %v", err)
	}
}
