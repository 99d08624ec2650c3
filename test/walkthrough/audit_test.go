package walkthrough

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func jwt(payload string) string {
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
}

func TestParseToken(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		want    claims
		wantErr string
	}{
		{"service account token", jwt(`{"jti":"abc","sub":"system:serviceaccount:default:pod-lister","iss":"https://c2","exp":42}`) + "\n",
			claims{ID: "abc", Subject: podLister, Issuer: "https://c2", ExpiresAt: 42}, ""},
		{"no jti", jwt(`{"sub":"x"}`), claims{Subject: "x"}, "no jti"},
		{"not a JWT", "abc.def", claims{}, "not a JWT"},
		{"payload not base64url", "a.***.c", claims{}, "JWT payload"},
		{"payload not JSON", "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c", claims{}, "JWT claims"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseToken(tt.token)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("parseToken = %+v, %v; want %+v, error containing %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// event is an audit log line of a list of pods by user with token jti (none if empty) and
// the given user agent and status.
func event(stage, user, jti, agent string, code int) string {
	extra := ""
	if jti != "" {
		extra = `,"extra":{"authentication.kubernetes.io/credential-id":["JTI=` + jti + `"]}`
	}
	return `{"kind":"Event","stage":"` + stage + `","verb":"list","requestURI":"/api/v1/namespaces/default/pods","userAgent":"` + agent +
		`","stageTimestamp":"2026-01-02T03:04:05.123456Z","user":{"username":"` + user + `"` + extra + `},"responseStatus":{"code":` + strconv.Itoa(code) + `}}` + "\n"
}

func TestAuditReader(t *testing.T) {
	const agent = "generic-client/v0.0.0 (linux/amd64) kubernetes/$Format"
	lines := []string{
		event("ResponseComplete", podLister, "one", agent, 200),
		event("ResponseComplete", podLister, "one", agent, 200),
		event("ResponseStarted", podLister, "two", agent, 200),                     // not complete
		event("ResponseComplete", podLister, "two", "multicluster-client/v0", 200), // another client
		event("ResponseComplete", "system:serviceaccount:default:other", "two", agent, 200),
		event("ResponseComplete", podLister, "two", agent, 403),
		event("ResponseComplete", podLister, "two", agent, 200),
	}
	tests := []struct {
		name   string
		chunks []string // what the log holds at each Update, cumulatively appended
	}{
		{"whole lines", lines},
		{"lines split across reads", func() []string {
			all := strings.Join(lines, "")
			var chunks []string
			for i := 0; i < len(all); i += 37 {
				chunks = append(chunks, all[i:min(i+37, len(all))])
			}
			return chunks
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			a := newAuditReader(path, "generic-client/")
			if err := a.Update(); err != nil {
				t.Fatalf("a log not written yet: %v", err)
			}
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, c := range tt.chunks {
				if _, err := f.WriteString(c); err != nil {
					t.Fatal(err)
				}
				if err := a.Update(); err != nil {
					t.Fatal(err)
				}
			}
			if got := a.Use("one"); got.OK != 2 || got.Failed != 0 || got.First.IsZero() {
				t.Errorf("token one: %+v, want 2 calls", got)
			}
			if got := a.Use("two"); got.OK != 1 || got.Failed != 1 {
				t.Errorf("token two: %+v, want 1 successful and 1 failed call", got)
			}
			if got := a.Use("three"); got.OK != 0 {
				t.Errorf("token three: %+v, want none", got)
			}
			if a.Failed() != 1 {
				t.Errorf("Failed() = %d, want 1", a.Failed())
			}
		})
	}
}

func TestParseSummary(t *testing.T) {
	tests := []struct {
		name                string
		log                 string
		successes, failures int
		wantErr             bool
	}{
		{"summary at the end", "generic-client: listed 1 pods in namespace default (successes=1 failures=0)\ngeneric-client: summary: successes=12 failures=0\n", 12, 0, false},
		{"failures counted", "generic-client: summary: successes=3 failures=2", 3, 2, false},
		{"no summary: the client did not end cleanly", "generic-client: listed 1 pods in namespace default (successes=1 failures=0)\n", 0, 0, true},
		{"two summaries", "generic-client: summary: successes=1 failures=0\ngeneric-client: summary: successes=1 failures=0\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, err := parseSummary(tt.log)
			if s != tt.successes || f != tt.failures || (err != nil) != tt.wantErr {
				t.Errorf("parseSummary = %d, %d, %v; want %d, %d, error %v", s, f, err, tt.successes, tt.failures, tt.wantErr)
			}
		})
	}
}
