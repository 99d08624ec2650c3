package servingcert

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// material is the content of the serving-certificate Secret.
type material struct {
	// caBundle holds the CAs the webhook configuration must trust, current first: exactly what
	// is injected as caBundle.
	caBundle []byte
	// caKey is the current CA's private key.
	caKey []byte
	// cert and key are the serving certificate and its key.
	cert, key []byte
}

func (m material) equal(o material) bool {
	return bytes.Equal(m.caBundle, o.caBundle) && bytes.Equal(m.caKey, o.caKey) &&
		bytes.Equal(m.cert, o.cert) && bytes.Equal(m.key, o.key)
}

// change is one step a plan took, reported as a log line and an event.
type change struct {
	reason, message string
}

// planInput is what the next state of the certificates depends on.
type planInput struct {
	now     time.Time
	current material
	// injected is the CA bundle the webhook configuration holds now.
	injected []byte
	// rotateCA forces a new CA (and then a new serving certificate).
	rotateCA bool
	timing   Timing
	hosts    hostNames
}

// plan computes the next certificates from the current ones. It never makes the served
// certificate untrusted by what the API server may still hold:
//
//  1. a new CA (first start, near expiry, or forced) is only added to the bundle, next to the
//     previous one;
//  2. the serving certificate moves to the new CA once the injected bundle holds it and it has
//     been trusted for Overlap (time for every API server to see the new bundle and every
//     replica to see the Secret);
//  3. the previous CAs are dropped Overlap after that (time for every replica to serve the new
//     certificate), or when they expire.
//
// A missing or broken certificate is replaced at once: there is nothing to keep serving.
func plan(in planInput) (material, []change, error) {
	now := in.now
	var changes []change

	bundle, err := parseCerts(in.current.caBundle)
	if err != nil {
		bundle = nil
	}
	ca, err := parseKeyPair(in.current.caBundle, in.current.caKey)
	if err != nil || !ca.cert.IsCA || expired(ca.cert, now) {
		ca = nil
	}
	olds := bundle
	if ca != nil {
		olds = bundle[1:]
	}

	var caReason string
	switch {
	case ca == nil:
		caReason = "no valid CA"
	case in.rotateCA:
		caReason = "rotation requested"
	case due(ca.cert, now):
		caReason = "CA nearing expiry"
	}
	if caReason != "" {
		msg := "new serving CA (" + caReason + ")"
		if ca != nil {
			olds = append([]*x509.Certificate{ca.cert}, olds...)
			msg += ", trusted next to the previous one until the serving certificate moves to it"
		}
		if ca, err = newCA(now, in.timing.CAValidity); err != nil {
			return material{}, nil, fmt.Errorf("creating CA: %w", err)
		}
		changes = append(changes, change{ReasonCARotated, msg})
	}
	live := slices.DeleteFunc(slices.Clone(olds), func(c *x509.Certificate) bool {
		return expired(c, now) || !c.IsCA || c.Equal(ca.cert)
	})
	if n := len(olds) - len(live); n > 0 {
		changes = append(changes, change{ReasonCARetired, fmt.Sprintf("%d expired or invalid CA(s) no longer trusted", n)})
	}
	olds = live
	trusted := append([]*x509.Certificate{ca.cert}, olds...)

	leaf, err := parseKeyPair(in.current.cert, in.current.key)
	if err != nil || !in.hosts.covers(leaf.cert) || !verifies(leaf.cert, trusted, now) {
		leaf = nil
	}
	var leafReason string
	switch {
	case leaf == nil:
		leafReason = "no valid serving certificate"
	case leaf.cert.CheckSignatureFrom(ca.cert) != nil:
		injected, _ := parseCerts(in.injected)
		if slices.ContainsFunc(injected, ca.cert.Equal) && !now.Before(madeAt(ca.cert).Add(in.timing.Overlap)) {
			leafReason = "moving to the new CA"
		}
	case due(leaf.cert, now):
		leafReason = "serving certificate nearing expiry"
	}
	if leafReason != "" {
		if leaf, err = newServingCert(ca, now, in.timing.CertValidity, in.hosts); err != nil {
			return material{}, nil, fmt.Errorf("creating serving certificate: %w", err)
		}
		changes = append(changes, change{ReasonCertificateIssued, "new serving certificate (" + leafReason + ")"})
	}

	if len(olds) > 0 && leaf.cert.CheckSignatureFrom(ca.cert) == nil && !now.Before(madeAt(leaf.cert).Add(in.timing.Overlap)) {
		changes = append(changes, change{ReasonCARetired, fmt.Sprintf("%d previous CA(s) no longer trusted", len(olds))})
		olds = nil
	}

	next := material{
		caBundle: encodeCerts(append([]*x509.Certificate{ca.cert}, olds...)),
		caKey:    ca.keyPEM,
		cert:     leaf.certPEM,
		key:      leaf.keyPEM,
	}
	return next, changes, nil
}
