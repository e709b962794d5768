package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// builder runs the go command to turn a plan into a binary.
type builder struct {
	// Env is the environment of every go command (os.Environ(): GOFLAGS,
	// GOPROXY, GOCACHE, GOMODCACHE... pass through). GOWORK=off is added:
	// the generated module is never part of a workspace.
	Env []string
	// Keep keeps the temporary module even after a successful build.
	Keep bool
	// Log receives what went in and, on failure, where the module is.
	Log io.Writer
}

// buildError is a failed go command, with its output.
type buildError struct {
	Args   []string
	Err    error
	Output []byte
}

func (e *buildError) Error() string {
	return fmt.Sprintf("go %s: %v\n%s", strings.Join(e.Args, " "), e.Err, bytes.TrimRight(e.Output, "\n"))
}

func (e *buildError) Unwrap() error { return e.Err }

// build writes the main module of p into a temporary directory and builds
// it. The directory is removed after a successful build unless b.Keep; it
// is kept, and its path printed, after a failure.
func (b *builder) build(ctx context.Context, p plan) (err error) {
	dir, err := os.MkdirTemp("", "sluice-build-")
	if err != nil {
		return fmt.Errorf("creating the build directory: %w", err)
	}
	defer func() {
		switch {
		case err != nil:
			fmt.Fprintf(b.Log, "sluice-build: the generated module is kept in %s\n", dir)
		case b.Keep:
			fmt.Fprintf(b.Log, "sluice-build: the generated module is in %s\n", dir)
		default:
			_ = os.RemoveAll(dir)
		}
	}()

	if err := os.WriteFile(filepath.Join(dir, "main.go"), mainGo(p), 0o644); err != nil {
		return fmt.Errorf("writing main.go: %w", err)
	}
	if err := writeGoSum(dir, p); err != nil {
		return err
	}
	steps := [][]string{{"mod", "init", mainModule}, modEditArgs(p)}
	if get := getArgs(p); get != nil {
		steps = append(steps, get)
	}
	steps = append(steps, []string{"mod", "tidy"})
	for _, args := range steps {
		if _, err := b.goCmd(ctx, dir, args...); err != nil {
			return err
		}
	}

	mods, err := b.resolved(ctx, dir, p)
	if err != nil {
		return err
	}
	version, revision, branch := stamp(ctx, p.Core, mods[p.Core.Module])
	fmt.Fprintf(b.Log, "sluice-build: building %s\n", p.Output)
	fmt.Fprintf(b.Log, "  sluice  %s (version %s, revision %s)\n", mods[p.Core.Module], version, revision)
	for _, d := range p.Plugins {
		fmt.Fprintf(b.Log, "  plugin  %s\n", mods[d.Module])
	}

	args := []string{"build", "-trimpath", "-ldflags", ldflags(version, revision, branch), "-o", p.Output}
	if p.Race {
		args = append(args, "-race")
	}
	if _, err := b.goCmd(ctx, dir, append(args, ".")...); err != nil {
		return err
	}
	fmt.Fprintf(b.Log, "sluice-build: wrote %s\n", p.Output)
	return nil
}

func (b *builder) goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, b.Env...), "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, &buildError{Args: args, Err: err, Output: append(stdout.Bytes(), stderr.Bytes()...)}
	}
	return stdout.Bytes(), nil
}

// module is what `go list -m -json` says of a module.
type module struct {
	Path    string
	Version string
	Replace *module
}

// String is PATH VERSION, followed by => and the replacement.
func (m module) String() string {
	s := strings.TrimSpace(m.Path + " " + m.Version)
	if m.Replace != nil {
		s += " => " + strings.TrimSpace(m.Replace.Path+" "+m.Replace.Version)
	}
	return s
}

// resolved is the version go mod tidy chose for the core and each plugin.
func (b *builder) resolved(ctx context.Context, dir string, p plan) (map[string]module, error) {
	args := []string{"list", "-m", "-json", p.Core.Module}
	for _, d := range p.Plugins {
		args = append(args, d.Module)
	}
	out, err := b.goCmd(ctx, dir, args...)
	if err != nil {
		return nil, err
	}
	mods := map[string]module{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m module
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading go list -m: %w", err)
		}
		mods[m.Path] = m
	}
	return mods, nil
}

// writeGoSum starts the generated go.sum with the go.sum files of the
// modules replaced by directories (the core checkout, local plugins). Their
// dependencies' checksums were verified when those go.sum files were
// written; without them go mod tidy would ask the checksum database again
// for every dependency, which fails offline (GOPROXY=off or no network)
// even when the module cache holds everything.
func writeGoSum(dir string, p plan) error {
	seen := map[string]bool{}
	var sum bytes.Buffer
	for _, d := range append([]dep{p.Core}, p.Plugins...) {
		if d.Dir == "" {
			continue
		}
		f, err := os.Open(filepath.Join(d.Dir, "go.sum"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("reading the go.sum of %s: %w", d.Module, err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !seen[line] {
				seen[line] = true
				sum.WriteString(line + "\n")
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("reading the go.sum of %s: %w", d.Module, err)
		}
	}
	if sum.Len() == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing go.sum: %w", err)
	}
	return nil
}

// stamp is the version, revision and branch stamped into the binary: those
// of the checkout (git describe, as the Makefile does) when the core is a
// directory, else the module version go resolved.
func stamp(ctx context.Context, core dep, resolved module) (version, revision, branch string) {
	if core.Dir != "" {
		git := func(args ...string) string {
			out, err := exec.CommandContext(ctx, "git", append([]string{"-C", core.Dir}, args...)...).Output()
			if err != nil {
				return ""
			}
			return strings.TrimSpace(string(out))
		}
		version, revision, branch = git("describe", "--tags", "--always", "--dirty"), git("rev-parse", "HEAD"), git("rev-parse", "--abbrev-ref", "HEAD")
		return or(version, "dev"), or(revision, "unknown"), or(branch, "unknown")
	}
	v := resolved.Version
	if resolved.Replace != nil && resolved.Replace.Version != "" {
		v = resolved.Replace.Version
	}
	return or(v, "unknown"), or(pseudoRevision(v), "unknown"), "unknown"
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
