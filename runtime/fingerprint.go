package runtime

// Files a load reads, and fingerprints of configs and files.
//
// One load (a reload, `sluice validate`) reads each file at most once, and
// everything in it shares that read: the config file, file() in
// expressions, the fingerprint of a FileReferrer's files (which decides
// whether the component changed), Provision's ProvisionContext.ReadFile,
// and the fingerprint the controller keeps to skip an unchanged config.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

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
