package diagnose

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (rerun with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (rerun with -update if intended):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func plainMark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func TestPrintGolden(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	exp := now.Add(42 * time.Minute)
	mounts := &MountsReport{
		Pod: "multicluster-client-x7k2p", Namespace: "default",
		Imports: []ImportMount{
			{Name: "cluster2-default-pod-lister", Exists: true, Ready: "True", Reason: "TokenIssued", Expires: &exp,
				Secret: "cluster2-default-pod-lister-token", SecretPresent: true, Volume: "mcsa-cluster2-default-pod-lister",
				Path:       "/var/run/secrets/admiralty.io/serviceaccountimports/cluster2-default-pod-lister",
				Containers: []ContainerMount{{Name: "setup", Init: true, Mounted: true, ReadOnly: true}, {Name: "main", Mounted: true, ReadOnly: true}, {Name: "sidecar"}}},
			{Name: "cluster3-default-pod-lister", Secret: "cluster3-default-pod-lister-token"},
		},
		Problems: []Problem{
			{Import: "cluster2-default-pod-lister", Message: "container sidecar lacks the mount at /var/run/secrets/admiralty.io/serviceaccountimports/cluster2-default-pod-lister", Remedy: "recreate the pod so that the webhook mounts it in every container"},
			{Import: "cluster3-default-pod-lister", Message: "import not found in namespace default", Remedy: "kubectl mcsa import cluster3-default-pod-lister --cluster CLUSTER --remote-namespace NAMESPACE --service-account NAME -n default"},
		},
	}
	var b bytes.Buffer
	mounts.Print(&b, now, plainMark)
	golden(t, "mounts.golden", b.Bytes())

	healthy := &MountsReport{Pod: "p", Namespace: "default", Imports: mounts.Imports[:1], Problems: nil}
	healthy.Imports[0].Containers = healthy.Imports[0].Containers[:2]
	b.Reset()
	healthy.Print(&b, now, plainMark)
	golden(t, "mounts-healthy.golden", b.Bytes())

	federated := &MountsReport{Pod: "p", Namespace: "default", Imports: []ImportMount{
		{Name: "cluster2-default-reader", Mode: "Federated", Exists: true, Ready: "True", Reason: "Federated",
			ConfigMap: "cluster2-default-reader-federated", ConfigMapPresent: true, Audience: "kubectl-mcsa.admiralty.io/cluster2",
			Volume: "mcsa-cluster2-default-reader", Path: "/var/run/secrets/admiralty.io/serviceaccountimports/cluster2-default-reader",
			Containers: []ContainerMount{{Name: "main", Mounted: true, ReadOnly: true}}},
		{Name: "cluster3-default-reader", Mode: "Federated", Exists: true, Ready: "False", Reason: "IssuerNotTrusted",
			ConfigMap: "cluster3-default-reader-federated", Audience: "kubectl-mcsa.admiralty.io/cluster2",
			Volume: "mcsa-cluster3-default-reader", Path: "/var/run/secrets/admiralty.io/serviceaccountimports/cluster3-default-reader",
			Containers: []ContainerMount{{Name: "main", Mounted: true, ReadOnly: true}}},
	}, Problems: []Problem{
		{Import: "cluster3-default-reader", Message: "import not ready: IssuerNotTrusted: Cluster cluster3 refuses this cluster's service-account tokens for audience kubectl-mcsa.admiralty.io/cluster3. Run `kubectl mcsa federate cluster1 cluster3`."},
		{Import: "cluster3-default-reader", Message: "ConfigMap cluster3-default-reader-federated not written yet: the kubelet waits for it and the pod cannot start", Remedy: "see why with `kubectl mcsa get cluster3-default-reader -n default -o wide`"},
		{Import: "cluster3-default-reader", Message: `volume mcsa-cluster3-default-reader's token has audience "kubectl-mcsa.admiralty.io/cluster2", not "kubectl-mcsa.admiralty.io/cluster3": cluster cluster3 refuses it`, Remedy: "recreate the pod so that the webhook mounts the import as it is now (delete it if a controller manages it)"},
	}}
	b.Reset()
	federated.Print(&b, now, plainMark)
	golden(t, "mounts-federated.golden", b.Bytes())

	checks := []Check{
		{Context: "cluster1", Name: "crd", OK: true, Message: "the ServiceAccountImport API is installed and current"},
		{Context: "cluster1", Name: "controller", OK: true, Message: "deployment mcsa-controller available (1/1)"},
		{Context: "cluster1", Name: "webhook", OK: false, Message: "webhook automount.multicluster.admiralty.io has no CA bundle: the API server cannot call it and annotated pods are rejected", Remedy: "the controller injects it: check `kubectl --context cluster1 -n multicluster-service-account logs deploy/mcsa-controller`"},
		{Context: "cluster1", Name: "cluster cluster2", OK: true, Message: "reachable at https://192.0.2.10:6443; credential expires in 47m; the importer may renew it and import 1 of 2 import(s)"},
		{Context: "cluster1", Name: "cluster cluster2 grants", OK: false, Message: "not granted in cluster2: team-a/x", Remedy: "in cluster2: kubectl mcsa allow THIS_CLUSTER NAMESPACE/SERVICEACCOUNT"},
		{Context: "cluster2", Name: "role", OK: true, Message: "source only: cluster1 may import from this cluster (no importer installed here)"},
	}
	b.Reset()
	PrintChecks(&b, checks, plainMark)
	golden(t, "doctor.golden", b.Bytes())
}
