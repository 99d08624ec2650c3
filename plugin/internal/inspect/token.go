// Package inspect tells whose identity a credential carries in a remote cluster and what it may
// do there: the token's claims, decoded without verification, the remote server and CA, and
// live checks made with the token itself (SelfSubjectReview, SelfSubjectRulesReview,
// SelfSubjectAccessReview).
package inspect

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	certutil "k8s.io/client-go/util/cert"
)

// Claims are a service-account token's claims, decoded WITHOUT verifying the signature: only
// the issuing API server can tell whether they are true, which the live checks ask it. Their
// strings are cleaned of terminal control characters (see stripControls): the token may come
// from anyone.
type Claims struct {
	Issuer    string   `json:"issuer"`
	Subject   string   `json:"subject"`
	Audiences []string `json:"audiences"`
	// The dates are encoded by MarshalJSON. A date beyond what time.Time holds (± about 146
	// billion years) is clamped there.
	IssuedAt  time.Time `json:"-"`
	NotBefore time.Time `json:"-"`
	Expiry    time.Time `json:"-"`
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

// MarshalJSON writes each date twice: as RFC 3339 text (issuedAt, notBefore, expiry) when it
// has one, and as seconds since the epoch (issuedAtUnix, notBeforeUnix, expiryUnix), as in the
// token. RFC 3339 has four-digit years only, and encoding/json fails on a time.Time outside
// years 0–9999, which a token may well claim: the text is then left out, and the seconds say it.
func (c Claims) MarshalJSON() ([]byte, error) {
	type plain Claims // without this method
	return json.Marshal(struct {
		plain
		IssuedAt      string `json:"issuedAt,omitempty"`
		IssuedAtUnix  *int64 `json:"issuedAtUnix,omitempty"`
		NotBefore     string `json:"notBefore,omitempty"`
		NotBeforeUnix *int64 `json:"notBeforeUnix,omitempty"`
		Expiry        string `json:"expiry,omitempty"`
		ExpiryUnix    *int64 `json:"expiryUnix,omitempty"`
	}{
		plain:    plain(c),
		IssuedAt: rfc3339(c.IssuedAt), IssuedAtUnix: seconds(c.IssuedAt),
		NotBefore: rfc3339(c.NotBefore), NotBeforeUnix: seconds(c.NotBefore),
		Expiry: rfc3339(c.Expiry), ExpiryUnix: seconds(c.Expiry),
	})
}

// The dates RFC 3339 can write: years 0 to 9999.
var (
	firstRFC3339 = time.Date(0, time.January, 1, 0, 0, 0, 0, time.UTC)
	lastRFC3339  = time.Date(9999, time.December, 31, 23, 59, 59, 999999999, time.UTC)
)

// rfc3339 is t as RFC 3339 text, or "" if it has none (absent, or out of its years).
func rfc3339(t time.Time) string {
	if t.IsZero() || t.Before(firstRFC3339) || t.After(lastRFC3339) {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// seconds is t as seconds since the epoch, nil if absent.
func seconds(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	s := t.Unix()
	return &s
}

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

// ref is an object the token names; only its name is shown.
type ref struct {
	Name string `json:"name"`
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
	c := &Claims{Issuer: oneLine(raw.Iss), Subject: oneLine(raw.Sub), Expiry: unix(raw.Exp), IssuedAt: unix(raw.Iat), NotBefore: unix(raw.Nbf)}
	if len(raw.Aud) > 0 {
		var one string
		if json.Unmarshal(raw.Aud, &one) == nil {
			c.Audiences = []string{one}
		} else if err := json.Unmarshal(raw.Aud, &c.Audiences); err != nil {
			return nil, fmt.Errorf("token audiences: %w", err)
		}
		for i, a := range c.Audiences {
			c.Audiences[i] = oneLine(a)
		}
	}
	if k := raw.K8s; k != nil {
		c.Namespace = oneLine(k.Namespace)
		if k.ServiceAccount != nil {
			c.ServiceAccount = oneLine(k.ServiceAccount.Name)
		}
		switch {
		case k.Secret != nil:
			c.BoundObject = "Secret/" + oneLine(k.Secret.Name)
		case k.Pod != nil:
			c.BoundObject = "Pod/" + oneLine(k.Pod.Name)
		}
		if k.Node != nil {
			c.Node = oneLine(k.Node.Name)
		}
	}
	return c, nil
}

// maxSeconds bounds the dates read from a token (about 146 billion years either way): within
// it, time.Time computes and formats exactly; beyond it, it overflows and would, say, show a
// token that never expires as long expired.
const maxSeconds = 1 << 62

// unix reads a NumericDate: seconds since the epoch, possibly with a fraction (RFC 7519), so a
// number that is not an integer is truncated rather than ignored. The zero time means absent.
func unix(n *json.Number) time.Time {
	if n == nil {
		return time.Time{}
	}
	v, err := n.Int64()
	if err != nil {
		// Not an integer, or not one in int64. A json.Number is a valid JSON number, so
		// ParseFloat fails only on range, and then returns ±Inf, clamped below.
		f, _ := strconv.ParseFloat(n.String(), 64)
		switch {
		case math.IsNaN(f):
			return time.Time{}
		case f >= maxSeconds:
			v = maxSeconds
		case f <= -maxSeconds:
			v = -maxSeconds
		default:
			v = int64(f)
		}
	}
	return time.Unix(max(-maxSeconds, min(v, maxSeconds)), 0).UTC()
}

// Certificate is what matters of a CA certificate.
type Certificate struct {
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"notAfter"`
}

// ParseCAs reads the certificates of a PEM bundle.
func ParseCAs(bundle []byte) ([]Certificate, error) {
	certs, err := certutil.ParseCertsPEM(bundle)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	out := make([]Certificate, 0, len(certs))
	for _, cert := range certs {
		// The bundle may come from the files beside a token, as untrusted as the token.
		out = append(out, Certificate{Subject: oneLine(cert.Subject.String()), NotAfter: cert.NotAfter.UTC()})
	}
	return out, nil
}
