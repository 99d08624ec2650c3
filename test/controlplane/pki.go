package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA signs certificates: a cluster's (files ca.crt and ca.key in the cluster's directory), or
// another one a test makes, such as a node's.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
	// CertPath is the CA certificate's file.
	CertPath string
}

// NewCA makes a CA in dir (files ca.crt, ca.key).
func NewCA(dir, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c := &CA{cert: cert, key: key, CertPath: filepath.Join(dir, "ca.crt")}
	if err := os.WriteFile(c.CertPath, pemBlock("CERTIFICATE", der), 0o600); err != nil {
		return nil, err
	}
	return c, writeKey(filepath.Join(dir, "ca.key"), key)
}

// LoadCA reads the CA in dir, e.g. a cluster's (Cluster.Dir).
func LoadCA(dir string) (*CA, error) {
	certPath := filepath.Join(dir, "ca.crt")
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("no PEM in %s", dir)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("CA key cannot sign")
	}
	return &CA{cert: cert, key: signer, CertPath: certPath}, nil
}

// Leaf describes a certificate to issue: a client's (user and groups), or a server's.
type Leaf struct {
	CommonName string
	Groups     []string
	IPs        []net.IP
	DNSNames   []string
	Server     bool
}

// Issue writes <base>.crt and <base>.key in dir and returns their paths.
func (c *CA) Issue(dir, base string, l Leaf) (certPath, keyPath string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	usage := x509.ExtKeyUsageClientAuth
	if l.Server {
		usage = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: l.CommonName, Organization: l.Groups},
		IPAddresses:  l.IPs,
		DNSNames:     l.DNSNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return "", "", fmt.Errorf("signing %s: %w", l.CommonName, err)
	}
	certPath, keyPath = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	if err := os.WriteFile(certPath, pemBlock("CERTIFICATE", der), 0o600); err != nil {
		return "", "", err
	}
	return certPath, keyPath, writeKey(keyPath, key)
}

// pki holds the files one cluster's components need: a CA, the apiserver's serving
// certificate, an admin client certificate (system:masters) and the service-account signing key.
type pki struct {
	caCert                     string
	servingCert, servingKey    string
	saKey, saPub               string
	caPEM, adminPEM, adminKPEM []byte
}

func newPKI(dir string, ips []net.IP) (*pki, error) {
	ca, err := NewCA(dir, "kubectl-mcsa test CA")
	if err != nil {
		return nil, err
	}
	p := &pki{caCert: ca.CertPath, saKey: filepath.Join(dir, "sa.key"), saPub: filepath.Join(dir, "sa.pub")}
	if p.servingCert, p.servingKey, err = ca.Issue(dir, "apiserver", servingLeaf(ips)); err != nil {
		return nil, err
	}
	adminCert, adminKey, err := ca.Issue(dir, "admin", Leaf{CommonName: "admin", Groups: []string{"system:masters"}})
	if err != nil {
		return nil, err
	}
	for path, dst := range map[string]*[]byte{ca.CertPath: &p.caPEM, adminCert: &p.adminPEM, adminKey: &p.adminKPEM} {
		if *dst, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if err := writeKey(p.saKey, saKey); err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.saPub, pemBlock("PUBLIC KEY", pubDER), 0o600); err != nil {
		return nil, err
	}
	return p, nil
}

// servingLeaf is kube-apiserver's serving certificate, for the addresses it is reached at.
func servingLeaf(ips []net.IP) Leaf {
	return Leaf{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPs:        ips,
		Server:     true,
	}
}

// PEM is the CA's certificate (PEM).
func (c *CA) PEM() []byte { return pemBlock("CERTIFICATE", c.cert.Raw) }

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pemBlock("PRIVATE KEY", der), 0o600)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
