package runtime

// A config as one load sees it (source), the files it reads (fileCache),
// and fingerprints of configs and files.
//
// One load (a reload, `sluice validate`) reads each file at most once, and
// everything in it shares that read: the config file, file() in
// expressions, the fingerprint of a FileReferrer's files (which decides
// whether the component changed), Provision's ProvisionContext.ReadFile,
// and the fingerprint the controller keeps to skip an unchanged config.
// The controller reads nothing itself: it is handed a source and asks it
// for hashes, and for the parse (parsedConfig) whose files and secret
// ranges render every diagnostic about the config, at load and later.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/sluicehq/sluice/pipeline"
)

// source is a config as one load sees it: its file name and directory,
// its bytes, and the cache every other file of the load is read through.
type source struct {
	filename string
	dir      string // absolute: relative paths in the config resolve against it
	src      []byte
	files    *fileCache

	parseOnce sync.Once
	parsed    *parsedConfig
}

// readSource reads the config file filename (see ReadConfigFile) through
// a new cache of the load, whose other files readFile (nil: os.ReadFile)
// reads.
func readSource(filename string, readFile func(string) ([]byte, error)) (*source, error) {
	files := newFileCache(readFile)
	src, err := readConfigFile(filename, files.ReadFile)
	if err != nil {
		return nil, err
	}
	return &source{filename: filename, dir: absDir(filename), src: src, files: files}, nil
}

// newSource is a config given as bytes (Apply, Validate), whose other
// files readFile (nil: os.ReadFile) reads.
func newSource(filename string, src []byte, readFile func(string) ([]byte, error)) *source {
	return &source{filename: filename, dir: absDir(filename), src: src, files: newFileCache(readFile)}
}

// fingerprint identifies the config and the content of deps, the files
// it depends on.
func (s *source) fingerprint(deps []string) string { return hashConfig(s.src, deps, s.files) }

// hash is the SHA-256 of the config file alone (sluice_config_hash).
func (s *source) hash() string { return hashConfig(s.src, nil, s.files) }

// parsedConfig is the config parsed once, with what renders diagnostics
// about it: the parsed files (snippets) and the ranges of the secret
// attributes of every known block (never printed). A failed Update or
// re-evaluation later renders against the same parse.
type parsedConfig struct {
	file     *hcl.File
	diags    hcl.Diagnostics
	hclFiles map[string]*hcl.File
	secrets  []hcl.Range
}

// parse parses the config on first use: a load skipped because nothing
// changed (LoadFile) does not parse at all.
func (s *source) parse() *parsedConfig {
	s.parseOnce.Do(func() {
		parser := hclparse.NewParser()
		f, diags := parser.ParseHCL(s.src, s.filename)
		files := parser.Files()
		s.parsed = &parsedConfig{file: f, diags: diags, hclFiles: files, secrets: fileSecrets(files, s.filename)}
	})
	return s.parsed
}

// diagnosticsError is diags about this config, rendered with its snippets
// and its secrets hidden.
func (p *parsedConfig) diagnosticsError(diags hcl.Diagnostics) *DiagnosticsError {
	return &DiagnosticsError{Diags: diags, Files: p.hclFiles, Secrets: p.secrets}
}

// fileSecrets finds the secret attributes of every known block in the file,
// even when the file did not load, so that no diagnostic prints them.
func fileSecrets(files map[string]*hcl.File, filename string) []hcl.Range {
	f := files[filename]
	if f == nil {
		return nil
	}
	sb, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var out []hcl.Range
	for _, b := range sb.Blocks {
		if ct, ok := pipeline.Lookup(b.Type); ok {
			out = append(out, secretRanges(b.Body, ct.ArgsType())...)
		}
	}
	return out
}

// ReadConfigFile reads a config file, refusing what is not a regular file
// (after symlinks): a directory, a device or a FIFO (reading which would
// block forever) are mistakes, not configs.
func ReadConfigFile(filename string) ([]byte, error) {
	return readConfigFile(filename, os.ReadFile)
}

func readConfigFile(filename string, readFile func(string) ([]byte, error)) ([]byte, error) {
	fi, err := os.Stat(filename)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("reading config: %s is a directory; give the config file's path", filename)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading config: %s is not a regular file (%s)", filename, fi.Mode().Type())
	}
	src, err := readFile(filename)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return src, nil
}

// fileCache holds the files one load has read.
type fileCache struct {
	readFile func(string) ([]byte, error)

	mu sync.Mutex
	m  map[string]*cachedFile
}

type cachedFile struct {
	data []byte
	err  error
	sum  [sha256.Size]byte // of data, or of the error for an unreadable file
}

func newFileCache(readFile func(string) ([]byte, error)) *fileCache {
	if readFile == nil {
		readFile = os.ReadFile
	}
	return &fileCache{readFile: readFile, m: map[string]*cachedFile{}}
}

func (c *fileCache) get(path string) *cachedFile {
	path = filepath.Clean(path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.m[path]; ok {
		return f
	}
	f := &cachedFile{}
	f.data, f.err = c.readFile(path)
	if f.err != nil {
		// A missing file hashes as such: creating it is a change.
		f.sum = sha256.Sum256([]byte("unreadable: " + f.err.Error()))
	} else {
		f.sum = sha256.Sum256(f.data)
	}
	c.m[path] = f
	return f
}

// ReadFile reads path once per load. The returned bytes are shared: callers
// must not modify them.
func (c *fileCache) ReadFile(path string) ([]byte, error) {
	f := c.get(path)
	if f.err != nil {
		return nil, f.err
	}
	return f.data, nil
}

// filesHash fingerprints the content of files.
func (c *fileCache) filesHash(paths []string) string {
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%s\x00%x\n", p, c.get(p).sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashConfig fingerprints a config and the files it depends on.
func hashConfig(src []byte, files []string, cache *fileCache) string {
	h := sha256.Sum256(src)
	s := hex.EncodeToString(h[:])
	if len(files) == 0 {
		return s
	}
	return s + "+" + cache.filesHash(files)
}
