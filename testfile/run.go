package testfile

import (
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluicehq/sluice/runtime"
)

// maxResponseInDiff bounds how much of an unexpected response a failure
// quotes.
const maxResponseInDiff = 512

// RunFile runs the test file at path and writes its outcome to w: one
// line "ok  PATH  N steps" when it passes; otherwise "FAIL  ..." lines
// with the step, the position and a diff. It reports whether the test
// passed.
func RunFile(path string, w io.Writer) bool {
	src, err := os.ReadFile(path)
	if err == nil && len(src) > MaxFileBytes {
		err = fmt.Errorf("%d bytes; a test file may have at most %d", len(src), MaxFileBytes)
	}
	if err != nil {
		fmt.Fprintf(w, "FAIL  %s  %v\n", path, err)
		return false
	}
	s, diags := Parse(path, src)
	if diags.HasErrors() {
		fmt.Fprintf(w, "FAIL  %s  malformed test file\n%s", path, indent(diags.Error()))
		return false
	}
	steps, err := s.run()
	if err != nil {
		fmt.Fprintf(w, "FAIL  %s\n%s", path, indent(err.Error()))
		return false
	}
	fmt.Fprintf(w, "ok    %s  %d %s\n", path, steps, plural(steps, "step", "steps"))
	return true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

// stepError is a failed step, rendered as the FAIL line's tail and an
// indented body.
func stepError(st Step, rng hcl.Range, what string, body []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: step %q: %s\n", rng.Filename, rng.Start.Line, st.Name, what)
	for _, l := range body {
		b.WriteString("    " + l + "\n")
	}
	return errors.New(b.String())
}

// run builds the config under test and plays the steps; it returns the
// number of steps that passed, all of them when err is nil.
func (s *Suite) run() (int, error) {
	dir := filepath.Dir(s.Filename)
	cfgName, src := s.Filename, s.InlineConfig
	if s.ConfigFile != "" {
		cfgName = s.ConfigFile
		if !filepath.IsAbs(cfgName) {
			cfgName = filepath.Join(dir, cfgName)
		}
		var err error
		if src, err = runtime.ReadConfigFile(cfgName); err != nil {
			return 0, fmt.Errorf("config under test: %v\n", err)
		}
	}
	// env() sees the test's env only: a test must not pass or fail with
	// the environment of the machine that runs it.
	env := s.Env
	g, err := runtime.LoadFixtureGraph(cfgName, src, runtime.FixtureGraphOptions{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	if err != nil {
		return 0, fmt.Errorf("the config under test did not load\n%s", indent(err.Error()))
	}
	for i, st := range s.Steps {
		if err := s.runStep(g, st); err != nil {
			return i, err
		}
	}
	return len(s.Steps), nil
}

func (s *Suite) runStep(g *runtime.FixtureGraph, st Step) error {
	if st.Advance > 0 {
		if err := g.Advance(st.Advance); err != nil {
			return stepError(st, st.Range, "advancing the clock: "+err.Error(), nil)
		}
	}
	for _, in := range st.Inputs {
		if in.Output != nil {
			if err := g.TakeCommandOutput(in.Component, in.Output.Stdout, in.Output.ExitCode); err != nil {
				return stepError(st, in.Range, err.Error(), nil)
			}
			continue
		}
		if in.Response != nil {
			if err := g.TakeResponse(in.Component, in.Response.Status, in.Response.Body); err != nil {
				return stepError(st, in.Range, err.Error(), nil)
			}
			continue
		}
		if in.Rows != nil {
			if err := g.TakeRows(in.Component, *in.Rows); err != nil {
				return stepError(st, in.Range, err.Error(), nil)
			}
			continue
		}
		if in.Request == nil {
			if err := g.TakeLines(in.Component, in.Lines); err != nil {
				return stepError(st, in.Range, err.Error(), nil)
			}
			continue
		}
		h, err := g.Handler(in.Component)
		if err != nil {
			return stepError(st, in.Range, err.Error(), nil)
		}
		r := in.Request
		req := httptest.NewRequest(r.Method, r.Path, strings.NewReader(r.Body))
		for k, v := range r.Headers {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		okStatus := rec.Code >= 200 && rec.Code < 300
		if r.Status != 0 {
			okStatus = rec.Code == r.Status
		}
		if !okStatus {
			want := "a 2xx status"
			if r.Status != 0 {
				want = fmt.Sprintf("status %d", r.Status)
			}
			body := strings.TrimSpace(rec.Body.String())
			if len(body) > maxResponseInDiff {
				body = body[:maxResponseInDiff] + "..."
			}
			return stepError(st, in.Range, fmt.Sprintf("%s %s to %s answered %d, want %s", r.Method, r.Path, in.Component, rec.Code, want), []string{"response: " + body})
		}
	}
	for _, e := range st.Expects {
		gath, err := g.Metrics(e.Component)
		if err != nil {
			return stepError(st, e.Range, err.Error(), nil)
		}
		fams, err := gath.Gather()
		if err != nil && len(fams) == 0 {
			return stepError(st, e.Range, fmt.Sprintf("gathering %s: %v", e.Component, err), nil)
		}
		got, err := fromGathered(fams)
		if err != nil {
			return stepError(st, e.Range, fmt.Sprintf("reading the exposition of %s: %v", e.Component, err), nil)
		}
		want, err := parseExposition(e.Metrics)
		if err != nil { // Parse checked it
			return stepError(st, e.Range, err.Error(), nil)
		}
		if d := diff(want, got, e.Match); len(d) > 0 {
			return stepError(st, e.Range, fmt.Sprintf("exposition of %s differs (match = %q; - expected, + got)", e.Component, e.Match), d)
		}
	}
	return nil
}
