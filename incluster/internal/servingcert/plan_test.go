package servingcert

import (
	"bytes"
	"crypto/x509"
	"testing"
	"time"
)

var testTiming = Timing{CAValidity: 200 * time.Hour, CertValidity: 90 * time.Hour, Overlap: 5 * time.Minute, CheckInterval: time.Minute}

var testHosts = parseHosts([]string{"mcsa-webhook.multicluster-service-account.svc", "127.0.0.1"})

type parsedMaterial struct {
	bundle []*x509.Certificate
	ca     *keyPair
	leaf   *keyPair
}

func mustParse(t *testing.T, m material) parsedMaterial {
	t.Helper()
	bundle, err := parseCerts(m.caBundle)
	if err != nil || len(bundle) == 0 {
		t.Fatalf("bundle: %v", err)
	}
	ca, err := parseKeyPair(m.caBundle, m.caKey)
	if err != nil {
		t.Fatalf("CA: %v", err)
	}
	leaf, err := parseKeyPair(m.cert, m.key)
	if err != nil {
		t.Fatalf("serving certificate: %v", err)
	}
	return parsedMaterial{bundle, ca, leaf}
}

// TestPlanLifecycle walks the certificates through their life, step by step, as the rotator
// does at each check, and checks at every step that the served certificate stays trusted by
// the bundle the API server holds.
func TestPlanLifecycle(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var (
		now      = start
		current  material
		injected []byte
	)
	// The CA and serving certificate of each step, by step name.
	cas := map[string]*x509.Certificate{}
	leaves := map[string]*x509.Certificate{}

	for _, step := range []struct {
		name    string
		advance time.Duration
		rotate  bool
		// inject copies the planned bundle into the webhook configuration after the step,
		// as the rotator does; false models an injection that failed.
		inject bool
		// wantCA and wantLeaf name the step whose CA/certificate must be current ("" = new).
		wantCA, wantLeaf string
		// wantOlds is how many previous CAs are still trusted.
		wantOlds    int
		wantReasons []string
	}{
		{name: "first", inject: true, wantReasons: []string{ReasonCARotated, ReasonCertificateIssued}},
		{name: "steady", advance: time.Hour, inject: true, wantCA: "first", wantLeaf: "first"},
		{name: "leaf due", advance: 59 * time.Hour, inject: true, wantCA: "first", wantReasons: []string{ReasonCertificateIssued}},
		{name: "forced", advance: time.Minute, rotate: true, inject: false, wantLeaf: "leaf due", wantOlds: 1, wantReasons: []string{ReasonCARotated}},
		{name: "overlap passed, new CA not injected", advance: 10 * time.Minute, inject: true, wantCA: "forced", wantLeaf: "leaf due", wantOlds: 1},
		{name: "new CA injected, overlap passed", advance: time.Minute, inject: true, wantCA: "forced", wantOlds: 1, wantReasons: []string{ReasonCertificateIssued}},
		{name: "previous CA still trusted", advance: 4 * time.Minute, inject: true, wantCA: "forced", wantLeaf: "new CA injected, overlap passed", wantOlds: 1},
		{name: "previous CA retired", advance: time.Minute, inject: true, wantCA: "forced", wantLeaf: "new CA injected, overlap passed", wantReasons: []string{ReasonCARetired}},
		{name: "leaf due again", advance: 60 * time.Hour, inject: true, wantCA: "forced", wantReasons: []string{ReasonCertificateIssued}},
		{name: "CA due", advance: 75 * time.Hour, inject: true, wantLeaf: "leaf due again", wantOlds: 1, wantReasons: []string{ReasonCARotated}},
		{name: "moved to the CA", advance: 6 * time.Minute, inject: true, wantCA: "CA due", wantOlds: 1, wantReasons: []string{ReasonCertificateIssued}},
	} {
		t.Run(step.name, func(t *testing.T) {
			now = now.Add(step.advance)
			previousInjected := injected
			next, changes, err := plan(planInput{now: now, current: current, injected: injected, rotateCA: step.rotate, timing: testTiming, hosts: testHosts})
			if err != nil {
				t.Fatal(err)
			}
			p := mustParse(t, next)
			cas[step.name], leaves[step.name] = p.ca.cert, p.leaf.cert

			var reasons []string
			for _, c := range changes {
				reasons = append(reasons, c.reason)
			}
			if len(reasons) != len(step.wantReasons) || (len(reasons) > 0 && !equalStrings(reasons, step.wantReasons)) {
				t.Errorf("changes %v, want %v", reasons, step.wantReasons)
			}
			if step.wantCA != "" && !p.ca.cert.Equal(cas[step.wantCA]) {
				t.Errorf("CA changed, want the one of step %q", step.wantCA)
			}
			if step.wantCA == "" && step.name != "first" && p.ca.cert.Equal(cas["first"]) {
				t.Error("CA not rotated")
			}
			if step.wantLeaf != "" && !p.leaf.cert.Equal(leaves[step.wantLeaf]) {
				t.Errorf("serving certificate changed, want the one of step %q", step.wantLeaf)
			}
			if step.wantLeaf == "" && bytes.Equal(next.cert, current.cert) {
				t.Error("serving certificate not reissued")
			}
			if got := len(p.bundle) - 1; got != step.wantOlds {
				t.Errorf("%d previous CAs trusted, want %d", got, step.wantOlds)
			}
			if !p.bundle[0].Equal(p.ca.cert) {
				t.Error("the current CA is not first in the bundle")
			}
			if !verifies(p.leaf.cert, p.bundle, now) || !testHosts.covers(p.leaf.cert) {
				t.Error("the serving certificate is not valid for the planned bundle and hosts")
			}
			// The invariant: what the API server may still hold trusts what is served next.
			if prev, _ := parseCerts(previousInjected); len(prev) > 0 && !verifies(p.leaf.cert, prev, now) {
				t.Error("the next serving certificate is not trusted by the bundle injected before this step")
			}
			current = next
			if step.inject {
				injected = next.caBundle
			}
			// A plan applied twice is stable (a bundle injected by this step counts from the
			// next check on).
			again, changes, err := plan(planInput{now: now, current: next, injected: previousInjected, timing: testTiming, hosts: testHosts})
			if err != nil || len(changes) != 0 || !again.equal(next) {
				t.Errorf("second plan at the same time changed %v (%v)", changes, err)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPlanRepairs covers states the plan must repair at once.
func TestPlanRepairs(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	good, _, err := plan(planInput{now: now, timing: testTiming, hosts: testHosts})
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := plan(planInput{now: now, timing: testTiming, hosts: testHosts})

	for _, tc := range []struct {
		name    string
		current material
		at      time.Time
		hosts   hostNames
		// newCA and newLeaf tell what must be replaced; keepOld whether the previous CA stays.
		newCA, newLeaf, keepOld bool
	}{
		{name: "new host name", current: good, at: now, hosts: parseHosts([]string{"mcsa-webhook.other.svc"}), newLeaf: true},
		{name: "CA key lost", current: material{good.caBundle, nil, good.cert, good.key}, at: now, hosts: testHosts, newCA: true, keepOld: true},
		{name: "CA key of another CA", current: material{good.caBundle, other.caKey, good.cert, good.key}, at: now, hosts: testHosts, newCA: true, keepOld: true},
		{name: "key of another certificate", current: material{good.caBundle, good.caKey, good.cert, other.key}, at: now, hosts: testHosts, newLeaf: true},
		{name: "certificate of another CA", current: material{good.caBundle, good.caKey, other.cert, other.key}, at: now, hosts: testHosts, newLeaf: true},
		{name: "garbage", current: material{[]byte("x"), []byte("y"), []byte("z"), nil}, at: now, hosts: testHosts, newCA: true, newLeaf: true},
		{name: "serving certificate expired", current: good, at: now.Add(testTiming.CertValidity), hosts: testHosts, newLeaf: true},
		{name: "everything expired", current: good, at: now.Add(testTiming.CAValidity), hosts: testHosts, newCA: true, newLeaf: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, _, err := plan(planInput{now: tc.at, current: tc.current, injected: good.caBundle, timing: testTiming, hosts: tc.hosts})
			if err != nil {
				t.Fatal(err)
			}
			p, g := mustParse(t, next), mustParse(t, good)
			if got := !p.ca.cert.Equal(g.ca.cert); got != tc.newCA {
				t.Errorf("new CA = %v, want %v", got, tc.newCA)
			}
			if got := !bytes.Equal(next.cert, good.cert); got != tc.newLeaf {
				t.Errorf("new serving certificate = %v, want %v", got, tc.newLeaf)
			}
			if got := len(p.bundle) > 1 && p.bundle[1].Equal(g.ca.cert); got != tc.keepOld {
				t.Errorf("previous CA kept = %v, want %v", got, tc.keepOld)
			}
			if !verifies(p.leaf.cert, p.bundle, tc.at) || !tc.hosts.covers(p.leaf.cert) {
				t.Error("the serving certificate is not valid")
			}
		})
	}
}
