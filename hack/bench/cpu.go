package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on Linux).
const clockTicks = 100

// cpuTimes are CPU seconds (user + system) used so far by each process of the run, by role:
// "cluster1 kube-apiserver", …, "controller", "bench".
type cpuTimes map[string]float64

func (e *env) cpuNow() cpuTimes {
	t := cpuTimes{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		role := ""
		switch {
		case pid == os.Getpid():
			role = "bench"
		case e.ctrl != nil && pid == e.ctrl.proc.Pid():
			role = "controller"
		default:
			b, err := os.ReadFile(filepath.Join(d, "cmdline"))
			if err != nil {
				continue
			}
			args := strings.Split(string(b), "\x00")
			for _, c := range []struct{ name, dir string }{{clusterA, e.a.Dir}, {clusterB, e.b.Dir}} {
				if strings.Contains(string(b), c.dir+"/") {
					role = c.name + " " + filepath.Base(args[0])
				}
			}
		}
		if role == "" {
			continue
		}
		if s, ok := procCPU(d); ok {
			t[role] += s
		}
	}
	return t
}

// procCPU reads utime + stime of /proc/<pid>/stat, in seconds.
func procCPU(dir string) (float64, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: fields are counted after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (utime + stime) / clockTicks, true
}

// perItem describes the CPU used between two snapshots, per item, in milliseconds, by role.
func perItem(before, after cpuTimes, items int) string {
	var roles []string
	total := 0.0
	for r := range after {
		roles = append(roles, r)
	}
	slices.Sort(roles)
	var parts []string
	for _, r := range roles {
		d := after[r] - before[r]
		// A process that started in between (the controller) counts from zero.
		if d < 0.005 {
			continue
		}
		total += d
		parts = append(parts, fmt.Sprintf("%s %.2f", r, d*1000/float64(items)))
	}
	return fmt.Sprintf("%.2f ms in all (%s)", total*1000/float64(items), strings.Join(parts, ", "))
}
