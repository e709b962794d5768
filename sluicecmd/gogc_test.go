package sluicecmd

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestApplyGOGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	logger := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		env      string
		flag     int
		want     int
		from     string
		wantErr  bool
		runtime_ int // the collector's percentage afterwards
	}{
		{env: "", flag: defaultGOGC, want: 50, from: "--runtime.gogc", runtime_: 50},
		{env: "", flag: 120, want: 120, from: "--runtime.gogc", runtime_: 120},
		{env: "80", flag: 50, want: 80, from: "GOGC environment variable", runtime_: 100},
		{env: "off", flag: 50, want: -1, from: "GOGC environment variable", runtime_: 100},
		{env: "junk", flag: 60, want: 60, from: "--runtime.gogc", runtime_: 60},
		{env: "", flag: 0, wantErr: true, runtime_: 100},
		{env: "", flag: -5, wantErr: true, runtime_: 100},
	} {
		t.Setenv("GOGC", c.env)
		debug.SetGCPercent(100)
		got, from, err := applyGOGC(c.flag, logger)
		if (err != nil) != c.wantErr {
			t.Fatalf("GOGC=%q --runtime.gogc=%d: err = %v, want error %v", c.env, c.flag, err, c.wantErr)
		}
		if !c.wantErr && (got != c.want || from != c.from) {
			t.Errorf("GOGC=%q --runtime.gogc=%d: %d from %q, want %d from %q", c.env, c.flag, got, from, c.want, c.from)
		}
		if rt := debug.SetGCPercent(100); rt != c.runtime_ {
			t.Errorf("GOGC=%q --runtime.gogc=%d: the collector runs at %d, want %d", c.env, c.flag, rt, c.runtime_)
		}
	}
}
