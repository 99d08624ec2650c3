package inspect

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
)

func TestStripControls(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain text", "system:serviceaccount:default:x", "system:serviceaccount:default:x"},
		{"tab and newline are kept", "a\tb\nc", "a\tb\nc"},
		{"unicode is kept", "é ✓ 日本", "é ✓ 日本"},
		{"colour", "\x1b[31mred\x1b[0m", "red"},
		{"cursor and erase", "a\x1b[2J\x1b[1;1Hb\x1b[?25l", "ab"},
		{"window title ended by BEL", "a\x1b]0;pwned\x07b", "ab"},
		{"hyperlink ended by ST", "a\x1b]8;;https://evil\x1b\\link\x1b]8;;\x1b\\b", "alinkb"},
		{"device control string", "a\x1bPq#0;2;0;0;0\x1b\\b", "ab"},
		{"unterminated string swallows the rest", "a\x1b]0;title", "a"},
		{"two-byte sequence", "a\x1bcb", "ab"},
		{"charset designation", "a\x1b(Bb", "ab"},
		{"lone ESC at the end", "a\x1b", "a"},
		{"8-bit CSI", "a\u009b31mb", "ab"},
		{"8-bit OSC ended by 8-bit ST", "a\u009d0;t\u009cb", "ab"},
		{"other C1", "a\u0085b\u0080c", "abc"},
		{"C0 and DEL", "a\rb\bc\x00d\x07e\x7ff", "abcdef"},
		{"invalid UTF-8", "a\xffb\x9bc", "a\ufffdb\ufffdc"},
		{"malformed CSI keeps the next byte", "a\x1b[31\u00e9b", "a\u00e9b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stripControls(tt.in); got != tt.want {
				t.Errorf("stripControls(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got := oneLine("a\tb\nc\x1b[1m"); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
}

// control finds a character no printed report may hold: C0 controls but newline (the report's
// own line ends), DEL and C1 controls, or invalid UTF-8.
func control(s string) (rune, bool) {
	if !utf8.ValidString(s) {
		return utf8.RuneError, true
	}
	for _, r := range s {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return r, true
		}
	}
	return 0, false
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

// hostile is a token whose every claim carries escape sequences: a retitled window, a cleared
// screen, a forged line, C1 and DEL; it was issued in the future and expires in the year 10000.
var hostile = jwt(`{"iss":"\u001b]0;pwned\u0007https://evil\u001b[2J","sub":"system:serviceaccount:default:x\n  ✓ authenticated as system:admin",` +
	`"aud":["a\u009b31mb","\u001b[8mhidden\u001b[0m"],"exp":253402300800,"iat":1799996400,` +
	`"kubernetes.io":{"namespace":"de\u007ffault","serviceaccount":{"name":"x\r"},"pod":{"name":"p\u001b[1A"},"node":{"name":"n\t"}}}`)

func TestPrintHostileToken(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r := FromCredential("token file /tmp/t\x1b[31m", credential.Data{Token: hostile, Server: "https://x\x1b]0;t\x07:6443"})
	var b bytes.Buffer
	r.Print(&b, now, mark)
	want := `Credential:  token file /tmp/t
Token (decoded, NOT verified):
  Issuer:     https://evil
  Subject:    system:serviceaccount:default:x   ✓ authenticated as system:admin
  Audiences:  ab, hidden
  Bound to:   Pod/p
  Issued:     2027-01-15T07:00:00Z (in 48d)
  Expires:    10000-01-01T00:00:00Z (292y left)
Server:      https://x:6443
`
	if b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}
	if r, ok := control(b.String()); ok {
		t.Errorf("printed a control character %U", r)
	}
	if c := r.Claims; c.Namespace != "default" || c.ServiceAccount != "x" || c.Node != "n " {
		t.Errorf("claims not cleaned: %+v", c)
	}
}

func TestClaimsJSON(t *testing.T) {
	tests := []struct {
		name, payload string
		want          []string // in the JSON
		absent        []string
	}{
		{"dates as text and seconds", `{"exp":1800000000,"iat":1799996400}`,
			[]string{`"expiry":"2027-01-15T08:00:00Z"`, `"expiryUnix":1800000000`, `"issuedAt":"2027-01-15T07:00:00Z"`, `"issuedAtUnix":1799996400`},
			[]string{`"notBefore`}},
		{"the last second of year 9999", `{"exp":253402300799}`,
			[]string{`"expiry":"9999-12-31T23:59:59Z"`, `"expiryUnix":253402300799`}, nil},
		{"past year 9999: seconds only", `{"exp":253402300800,"nbf":-62167219201}`,
			[]string{`"expiryUnix":253402300800`, `"notBeforeUnix":-62167219201`}, []string{`"expiry"`, `"notBefore"`}},
		{"the epoch is a date, not an absence", `{"exp":0}`,
			[]string{`"expiry":"1970-01-01T00:00:00Z"`, `"expiryUnix":0`}, nil},
		{"a fraction is truncated", `{"exp":1.8e9}`, []string{`"expiryUnix":1800000000`}, nil},
		{"beyond time.Time: clamped", `{"exp":1e30,"iat":-9223372036854775808}`,
			[]string{`"expiryUnix":4611686018427387904`, `"issuedAtUnix":-4611686018427387904`}, []string{`"expiry"`}},
		{"no date", `{"iss":"x"}`, nil, []string{`"expiry`, `"issuedAt`, `"notBefore`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := FromCredential("test", credential.Data{Token: jwt(tt.payload)})
			if r.Claims == nil {
				t.Fatal(r.ClaimsError)
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("%s lacks %s", b, w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(string(b), a) {
					t.Errorf("%s has %s", b, a)
				}
			}
			// -o yaml goes through JSON.
			if _, err := yaml.Marshal(r); err != nil {
				t.Errorf("yaml: %v", err)
			}
		})
	}
}

func TestFarDatesPrint(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct{ exp, want string }{
		// Clamped rather than overflowing into a date long past.
		{"1e30", "(292y left)"},
		{"9223372036854775807", "(292y left)"},
		{"-9223372036854775808", "✗ expired 292y ago"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		FromCredential("test", credential.Data{Token: jwt(`{"exp":` + tt.exp + `}`)}).Print(&b, now, mark)
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("exp %s:\n%s\nwant %q", tt.exp, b.String(), tt.want)
		}
	}
}

// FuzzDecodeToken: inspect decodes any token the user points it at. Whatever the token, it
// must not panic, its report must print without a control character, and encode as JSON. The
// input is tried as a whole token and as a token's payload, where JSON reaches the decoder.
func FuzzDecodeToken(f *testing.F) {
	for _, seed := range []string{
		"", "a.b.c", "abc", `{}`, `null`, `[]`, `"x"`,
		`{"iss":"https://c2","sub":"system:serviceaccount:default:pod-lister","aud":["https://c2"],"exp":1800000000,"iat":1799996400,"kubernetes.io":{"namespace":"default","serviceaccount":{"name":"pod-lister","uid":"u"},"secret":{"name":"s","uid":"v"}}}`,
		`{"aud":"vault","exp":1}`, `{"aud":[1,2]}`, `{"aud":{}}`, `{"exp":"soon"}`, `{"exp":1e400}`, `{"exp":-1e400}`, `{"exp":1.5}`,
		`{"exp":253402300800}`, `{"exp":-62167219201}`, `{"exp":9223372036854775807,"iat":-9223372036854775808,"nbf":1e19}`,
		`{"kubernetes.io":{"pod":{"name":"p"},"node":{"name":"n"}}}`, `{"kubernetes.io":null}`, `{"kubernetes.io":{"secret":null,"pod":{}}}`,
		`{"iss":"\u001b]0;pwned\u0007","sub":"a\nb","aud":["\u009b31m","\u001b[2J"],"kubernetes.io":{"namespace":"\u007f\u0085"}}`,
		"{\"iss\":\"\xff\xfe\x1b\"}",
		hostile,
	} {
		f.Add(seed)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		enc := base64.RawURLEncoding.EncodeToString
		for _, token := range []string{s, enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(s)) + ".sig"} {
			_, _ = DecodeToken(token)
			r := FromCredential("test", credential.Data{Token: token})
			var b bytes.Buffer
			r.Print(&b, now, mark)
			if c, ok := control(b.String()); ok {
				t.Fatalf("token %q printed control character %U:\n%q", token, c, b.String())
			}
			j, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("token %q: JSON: %v", token, err)
			}
			if c, ok := control(string(j)); ok {
				t.Fatalf("token %q: JSON holds control character %U: %s", token, c, j)
			}
		}
	})
}
