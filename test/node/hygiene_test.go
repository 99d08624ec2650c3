package node

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestDiff(t *testing.T) {
	base := func() *Snapshot {
		return &Snapshot{
			Processes: map[int]string{7: "7 /usr/bin/containerd"},
			Mounts:    []string{"/ ext4 /dev/vda"},
			Cgroups:   []string{"memory/mcsa-old"},
			Sysctls:   map[string]string{"kernel.panic": "1"},
			IPTables:  []string{"iptables-nft-save filter :INPUT ACCEPT"},
			Links:     []string{"lo"},
			Files:     []string{"/etc/cni"},
		}
	}
	tests := []struct {
		name   string
		change func(s *Snapshot)
		want   []string
	}{
		{"unchanged", func(*Snapshot) {}, nil},
		{"process started", func(s *Snapshot) { s.Processes[9] = "9 /usr/bin/kubelet" }, []string{"process left running: 9 /usr/bin/kubelet"}},
		{"process ended", func(s *Snapshot) { delete(s.Processes, 7) }, nil},
		{"mount added and removed", func(s *Snapshot) { s.Mounts = []string{"/var/lib/kubelet tmpfs tmpfs"} }, []string{
			"mount added: /var/lib/kubelet tmpfs tmpfs", "mount removed: / ext4 /dev/vda",
		}},
		{"cgroup left", func(s *Snapshot) { s.Cgroups = append(s.Cgroups, "cpu/kubepods") }, []string{"cgroup added: cpu/kubepods"}},
		{"sysctl changed", func(s *Snapshot) { s.Sysctls["kernel.panic"] = "10" }, []string{`sysctl kernel.panic: "1" before, "10" after`}},
		{"iptables chain added", func(s *Snapshot) {
			s.IPTables = append(s.IPTables, "iptables-nft-save filter :KUBE-FIREWALL -")
		}, []string{"iptables rule added: iptables-nft-save filter :KUBE-FIREWALL -"}},
		{"iptables not taken (inside a sandbox)", func(s *Snapshot) { s.IPTables, s.Links = nil, nil }, nil},
		{"link added", func(s *Snapshot) { s.Links = append(s.Links, "cni0") }, []string{"network interface added: cni0"}},
		{"file created", func(s *Snapshot) { s.Files = append(s.Files, "/etc/cni/net.d") }, []string{"file added: /etc/cni/net.d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := base()
			tt.change(after)
			if got := base().Diff(after); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsNodeCgroup(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"memory/kubepods", true},
		{"cpu/kubepods.slice/x", true},
		{"pids/mcsa-node-123-cluster1/kubepods/besteffort", true},
		{"pids/mcsa-node-123-cluster1", true},
		{"memory/process_api/abc", false},
		{"memory/other/mcsa-x", false},
		{"unified/system.slice", false},
	}
	for _, tt := range tests {
		if got := isNodeCgroup(tt.path); got != tt.want {
			t.Errorf("isNodeCgroup(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/plain", "/plain"},
		{`/with\040space`, "/with space"},
		{`/tab\011and\134backslash`, "/tab\tand\\backslash"},
	}
	for _, tt := range tests {
		if got := unescapeMount(tt.in); got != tt.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSnapshotSeesLeaks makes, inside the sandbox, each kind of leftover the hygiene check
// looks for, and checks that a snapshot reports it — so that an empty diff means something.
func TestSnapshotSeesLeaks(t *testing.T) {
	Require(t)
	before, err := TakeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("the test's own mount: %v", err)
		}
	}()

	cg := filepath.Join(cgroupRoot, "pids", filepath.Base(os.Getenv(envDir))+"-leak")
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(cg)

	if err := os.MkdirAll("/var/lib/kubelet/device-plugins", 0o755); err != nil { // in the overlay
		t.Fatal(err)
	}
	defer os.RemoveAll("/var/lib/kubelet")

	pause := filepath.Join(dir, "pause")
	sleep, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pause, sleep, 0o755); err != nil {
		t.Fatal(err)
	}
	proc := exec.Command(pause, "60")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := proc.Process.Kill(); err != nil {
			t.Errorf("the test's own process: %v", err)
		}
		_ = proc.Wait() // reaps it; its status is the kill's
	}()

	fwd := sysctlPath("net.ipv4.ip_forward") // this network namespace's own
	old, err := os.ReadFile(fwd)
	if err != nil {
		t.Fatal(err)
	}
	flipped := "1"
	if strings.TrimSpace(string(old)) == "1" {
		flipped = "0"
	}
	if err := os.WriteFile(fwd, []byte(flipped), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := os.WriteFile(fwd, old, 0o644); err != nil {
			t.Errorf("restoring %s: %v", fwd, err)
		}
	}()

	after, err := TakeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	diff := strings.Join(before.Diff(after), "\n")
	for _, want := range []string{
		"mount added: " + mnt + " tmpfs",
		"cgroup added: pids/" + filepath.Base(cg),
		"file added: /var/lib/kubelet",
		"process left running: ",
		"sysctl net.ipv4.ip_forward",
	} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
}
