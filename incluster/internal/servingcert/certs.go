package servingcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// backdate is subtracted from every certificate's NotBefore so that a verifier whose clock lags
// ours still accepts it. Because it is constant, NotBefore+backdate is when a certificate was
// made, which the rotation plan uses instead of keeping timestamps of its own.
const backdate = 5 * time.Minute

// keyPair is a certificate with its private key, in both parsed and PEM forms.
type keyPair struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// madeAt is when a certificate made by this package was made.
func madeAt(c *x509.Certificate) time.Time { return c.NotBefore.Add(backdate) }

// due tells whether a certificate has used two thirds of its lifetime, the point at which it is
// replaced, leaving a third of it to roll over without hurry.
func due(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return !now.Before(c.NotBefore.Add(life / 3 * 2))
}

func expired(c *x509.Certificate, now time.Time) bool { return !now.Before(c.NotAfter) }

func newCA(now time.Time, validity time.Duration) (*keyPair, error) {
	tmpl := &x509.Certificate{
		// The timestamp makes each CA's subject distinct, so that clients tell rotated CAs apart.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("mcsa-webhook-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return issue(tmpl, nil)
}

func newServingCert(ca *keyPair, now time.Time, validity time.Duration, hosts hostNames) (*keyPair, error) {
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	// The common name is informational (clients check the SANs): the first name or address.
	var cn string
	switch {
	case len(hosts.dns) > 0:
		cn = hosts.dns[0]
	case len(hosts.ips) > 0:
		cn = hosts.ips[0].String()
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    hosts.dns,
		IPAddresses: hosts.ips,
		NotBefore:   now.Add(-backdate),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return issue(tmpl, ca)
}

// issue makes a P-256 key and a certificate for it, signed by parent or self-signed.
func issue(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)); err != nil {
		return nil, err
	}
	parentCert, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		parentCert, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// parseKeyPair parses a PEM certificate and its PEM private key, checking that they match.
func parseKeyPair(certPEM, keyPEM []byte) (*keyPair, error) {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, errors.New("missing certificate or key")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("private key cannot sign")
	}
	cert := pair.Leaf
	if cert == nil {
		if cert, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &keyPair{cert: cert, key: signer, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// parseCerts parses every certificate of a PEM bundle, in order.
func parseCerts(bundle []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	return certs, nil
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		// In memory, a block without headers always encodes.
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// verifies tells whether leaf chains to one of roots at time now, for serving TLS.
func verifies(leaf *x509.Certificate, roots []*x509.Certificate, now time.Time) bool {
	if len(roots) == 0 {
		return false
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

// hostNames are the names a serving certificate must be valid for.
type hostNames struct {
	dns []string
	ips []net.IP
}

func parseHosts(hosts []string) hostNames {
	var h hostNames
	for _, s := range hosts {
		if ip := net.ParseIP(s); ip != nil {
			h.ips = append(h.ips, ip)
		} else {
			h.dns = append(h.dns, s)
		}
	}
	return h
}

// covers tells whether a certificate is valid for every host name.
func (h hostNames) covers(c *x509.Certificate) bool {
	for _, d := range h.dns {
		if c.VerifyHostname(d) != nil {
			return false
		}
	}
	for _, ip := range h.ips {
		if c.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}
