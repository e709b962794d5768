// Package proc reads what the bench programs report about a target process
// and the machine: its resident memory and the load average, from /proc,
// and builds the Sluice binaries the way the images are built.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory is a process's resident memory, in bytes.
type Memory struct {
	RSS  float64 // VmRSS
	Anon float64 // RssAnon: heap, stacks, the Go runtime's arenas
	File float64 // RssFile: the pages of the executable (and other files) it touched
}

// Sub is m - o, field by field.
func (m Memory) Sub(o Memory) Memory {
	return Memory{m.RSS - o.RSS, m.Anon - o.Anon, m.File - o.File}
}

// ReadMemory reads VmRSS, RssAnon and RssFile of pid from /proc/PID/status.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	found := 0
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64) // kB
		switch f[0] {
		case "VmRSS:":
			m.RSS, found = v*1024, found+1
		case "RssAnon:":
			m.Anon, found = v*1024, found+1
		case "RssFile:":
			m.File, found = v*1024, found+1
		}
	}
	if found != 3 {
		return Memory{}, errors.New("no VmRSS, RssAnon and RssFile in /proc/PID/status")
	}
	return m, nil
}

// LoadAvg is the 1, 5 and 15 minute load averages, or "unknown".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// BuildStatic compiles pkg into dir/name as the images do: static
// (CGO_ENABLED=0), without symbol tables.
func BuildStatic(dir, name, pkg string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}
