package config

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/klog/v2"
)

// fileConfig is a configuration for host that reads its bearer token from tokenFile and trusts
// the CAs in caFile, following changes of both (see the package docs). The files are checked
// now, so that a broken mount is reported when the configuration is built.
func fileConfig(host, tokenFile, caFile string) (*rest.Config, error) {
	token, read, err := readToken(tokenFile)
	if err != nil {
		return nil, err
	}
	ca, err := readFile(caFile)
	if err != nil {
		return nil, err
	}
	if _, err := certutil.ParseCertsPEM(ca); err != nil {
		return nil, fmt.Errorf("%s: not a PEM certificate bundle: %w", caFile, err)
	}
	tok := &fileToken{path: tokenFile, read: read, token: token}
	return &rest.Config{
		Host: host,
		// BearerTokenFile alone already follows the file at client-go's pace; it also documents
		// the source and keeps working in copies of the config that drop WrapTransport.
		BearerTokenFile: tokenFile,
		TLSClientConfig: rest.TLSClientConfig{CAFile: caFile},
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			return &tokenFileRoundTripper{token: tok, next: rt}
		},
	}, nil
}

// readToken reads a bearer token file, returning what it read from and the token.
func readToken(path string) (string, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	// Stat the open file, so that the version recorded is the one read even if the kubelet
	// swaps the files meanwhile.
	fi, err := f.Stat()
	if err != nil {
		return "", nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return "", nil, err
	}
	tok, err := parseToken(b)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	return tok, fi, nil
}

// parseToken accepts what can be sent as a bearer token: visible ASCII, surrounding white
// space trimmed as client-go does.
func parseToken(b []byte) (string, error) {
	if len(b) > maxFileSize {
		return "", fmt.Errorf("token larger than a secret can be (%d bytes)", maxFileSize)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("empty token")
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("token has a byte (%#x at %d) that cannot be in a bearer token", c, i)
		}
	}
	return tok, nil
}

// fileToken is the token of a file, re-read when the file changes.
type fileToken struct {
	path string

	mu     sync.Mutex
	read   os.FileInfo // version of the file token was read from
	token  string
	broken bool // the file was unusable at the last read; logged once per breakage
}

// get returns the file's token. It stats the file and reads it only when its version changed
// since the last read, or always when force is set. If the file cannot be read or holds no
// valid token, the last valid token is kept: the kubelet swaps files atomically, so this is a
// broken mount that the next swap repairs.
func (t *fileToken) get(force bool, logger klog.Logger) (string, error) {
	fi, statErr := os.Stat(t.path)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !force && statErr == nil && t.read != nil && sameVersion(t.read, fi) {
		return t.token, nil
	}
	tok, readFI, err := readToken(t.path)
	if err != nil {
		if t.token == "" {
			return "", err
		}
		if !t.broken {
			logger.Error(err, "Keeping the last valid bearer token")
			t.broken = true
		}
		return t.token, nil
	}
	t.read, t.token, t.broken = readFI, tok, false
	return tok, nil
}

// sameVersion tells whether two stats are of the same file content. The kubelet's atomic
// writer puts new content in a new file (another inode); in-place writers change the
// modification time or size.
func sameVersion(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// tokenFileRoundTripper sets the Authorization header from a token file, so that a long-lived
// client follows token rotation at once. As a rest.Config WrapTransport it runs after
// client-go's own BearerTokenFile round tripper, whose possibly stale header it replaces.
type tokenFileRoundTripper struct {
	token *fileToken
	next  http.RoundTripper
}

var _ utilnet.RoundTripperWrapper = &tokenFileRoundTripper{}

func (rt *tokenFileRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	logger := klog.FromContext(req.Context())
	tok, err := rt.token.get(false, logger)
	if err != nil {
		return nil, err
	}
	resp, err := rt.next.RoundTrip(withBearer(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// The token may have been revoked just after the kubelet swapped the files, while this
	// request was in flight. A refused request was not executed, so it is safe to send again
	// with the new token, once, if its body can be replayed.
	fresh, err := rt.token.get(true, logger)
	if err != nil || fresh == tok {
		return resp, nil
	}
	retry := withBearer(req, fresh)
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return resp, nil
		}
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	// Drain a little so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close() // the refused response is dropped: nothing to report
	logger.V(4).Info("Retrying a request refused with 401 with the rotated bearer token", "path", rt.token.path)
	return rt.next.RoundTrip(retry)
}

func (rt *tokenFileRoundTripper) WrappedRoundTripper() http.RoundTripper { return rt.next }

func withBearer(req *http.Request, token string) *http.Request {
	r := utilnet.CloneRequest(req) // a RoundTripper must not modify its request
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}
