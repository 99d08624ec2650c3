// Package inspect tells whose identity a credential carries in a remote cluster and what it may
// do there: the token's claims, decoded without verification, the remote server and CA, and
// live checks made with the token itself (SelfSubjectReview, SelfSubjectRulesReview,
// SelfSubjectAccessReview).
package inspect

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Claims are a service-account token's claims, decoded WITHOUT verifying the signature: only
// the issuing API server can tell whether they are true, which the live checks ask it.
type Claims struct {
	Issuer    string    `json:"issuer"`
	Subject   string    `json:"subject"`
	Audiences []string  `json:"audiences"`
	IssuedAt  time.Time `json:"issuedAt,omitzero"`
	NotBefore time.Time `json:"notBefore,omitzero"`
	Expiry    time.Time `json:"expiry,omitzero"`
	// Namespace and ServiceAccount name the service account, from the kubernetes.io claim.
	Namespace      string `json:"namespace,omitempty"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// BoundObject is the object the token is bound to ("Secret/name", "Pod/name"), if any.
	BoundObject string `json:"boundObject,omitempty"`
	// Node is the node of a pod-bound token.
	Node string `json:"node,omitempty"`
}

// TimeLeft is how long the token has before it expires (negative once expired).
func (c *Claims) TimeLeft(now time.Time) time.Duration { return c.Expiry.Sub(now) }

type rawClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp *json.Number    `json:"exp"`
	Iat *json.Number    `json:"iat"`
	Nbf *json.Number    `json:"nbf"`
	K8s *struct {
		Namespace      string `json:"namespace"`
		ServiceAccount *ref   `json:"serviceaccount"`
		Secret         *ref   `json:"secret"`
		Pod            *ref   `json:"pod"`
		Node           *ref   `json:"node"`
	} `json:"kubernetes.io"`
}

type ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// DecodeToken reads a JWT's claims without verifying it.
func DecodeToken(token string) (*Claims, error) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JSON web token (want three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("token payload is not base64url: %w", err)
	}
	var raw rawClaims
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("token payload is not JSON: %w", err)
	}
	c := &Claims{Issuer: raw.Iss, Subject: raw.Sub, Expiry: unix(raw.Exp), IssuedAt: unix(raw.Iat), NotBefore: unix(raw.Nbf)}
	if len(raw.Aud) > 0 {
		var one string
		if json.Unmarshal(raw.Aud, &one) == nil {
			c.Audiences = []string{one}
		} else if err := json.Unmarshal(raw.Aud, &c.Audiences); err != nil {
			return nil, fmt.Errorf("token audiences: %w", err)
		}
	}
	if k := raw.K8s; k != nil {
		c.Namespace = k.Namespace
		if k.ServiceAccount != nil {
			c.ServiceAccount = k.ServiceAccount.Name
		}
		switch {
		case k.Secret != nil:
			c.BoundObject = "Secret/" + k.Secret.Name
		case k.Pod != nil:
			c.BoundObject = "Pod/" + k.Pod.Name
		}
		if k.Node != nil {
			c.Node = k.Node.Name
		}
	}
	return c, nil
}

func unix(n *json.Number) time.Time {
	if n == nil {
		return time.Time{}
	}
	v, err := n.Int64()
	if err != nil {
		return time.Time{}
	}
	return time.Unix(v, 0).UTC()
}

// Certificate is what matters of a CA certificate.
type Certificate struct {
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"notAfter"`
}

// ParseCAs reads the certificates of a PEM bundle.
func ParseCAs(bundle []byte) ([]Certificate, error) {
	var out []Certificate
	for len(bundle) > 0 {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return out, fmt.Errorf("CA bundle: %w", err)
		}
		out = append(out, Certificate{Subject: cert.Subject.String(), NotAfter: cert.NotAfter.UTC()})
	}
	if len(out) == 0 {
		return nil, errors.New("CA bundle holds no certificate")
	}
	return out, nil
}
