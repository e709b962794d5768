// Package pgtest runs a throwaway PostgreSQL server for tests: initdb into a
// temporary directory, pg_ctl on a free port with its unix socket in that
// directory, and removal afterwards. When the tests run as root, the server
// runs as the `postgres` user (initdb refuses root).
//
// Typical use shares one server across a package's tests:
//
//	var srv *pgtest.Server
//	var srvErr error
//
//	func TestMain(m *testing.M) {
//		srv, srvErr = pgtest.New(pgtest.Options{})
//		code := m.Run()
//		srv.Close()
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) {
//		pgtest.Check(t, srvErr) // skips when no server is installed, fails under CI=true
//		conn := srv.Connect(t, "postgres")
//		...
//	}
//
// Start(t) is the one-test form, cleaned up with t.Cleanup. Stop and
// Restart simulate outages.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/testing/realpart"
)

// ErrNotInstalled is returned when no PostgreSQL server binaries are found.
var ErrNotInstalled = errors.New("pgtest: no PostgreSQL server installed (no /usr/lib/postgresql/*/bin/initdb; run scripts/ensure-postgres.sh)")

// Options configure a server.
type Options struct {
	// Conf lines are appended to postgresql.conf, e.g.
	// "shared_preload_libraries = 'pg_stat_statements'".
	Conf []string
}

// Server is a running (or stopped) throwaway PostgreSQL server.
type Server struct {
	BinDir    string
	Dir       string // temp root: data/, sock/, server.log
	DataDir   string
	SocketDir string
	Port      int
	// Version is the server's major version, e.g. 15.
	Version int

	runAs *user.User // nil: run as the current user

	mu      sync.Mutex
	running bool
	closed  bool
}

// SkipShort skips the test under go test -short: the fast lane starts no
// PostgreSQL. Start and Check call it; a helper that shares one server
// calls it before New.
func SkipShort(t testing.TB) {
	t.Helper()
	realpart.SkipShort(t, "a real PostgreSQL server")
}

// Check skips the test when err is ErrNotInstalled outside CI, and fails it
// for any other error, or for a missing server under CI=true. It skips
// under -short (SkipShort).
func Check(t testing.TB, err error) {
	t.Helper()
	SkipShort(t)
	realpart.Check(t, err, ErrNotInstalled)
}

// Start starts a server for one test and stops it in t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	SkipShort(t)
	s, err := New(opts)
	Check(t, err)
	t.Cleanup(s.Close)
	return s
}

// FindBinDir returns the newest /usr/lib/postgresql/*/bin holding initdb
// (or $PGTEST_BINDIR when set).
func FindBinDir() (string, error) {
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("pgtest: PGTEST_BINDIR=%s: %w", d, err)
		}
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", ErrNotInstalled
	}
	sort.Slice(matches, func(i, j int) bool { return majorOf(matches[i]) > majorOf(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

func majorOf(initdbPath string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdbPath))))
	return v
}

// New creates a data directory and starts the server.
func New(opts Options) (*Server, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{BinDir: bin, Version: majorOf(filepath.Join(bin, "initdb"))}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs a postgres user: %w", err)
		}
		s.runAs = u
	}
	s.Dir, err = os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s.DataDir = filepath.Join(s.Dir, "data")
	s.SocketDir = filepath.Join(s.Dir, "sock")
	if err := os.Mkdir(s.SocketDir, 0o700); err != nil {
		s.cleanup()
		return nil, err
	}
	if err := s.chown(s.Dir, s.SocketDir); err != nil {
		s.cleanup()
		return nil, err
	}
	if out, err := s.run(bin+"/initdb", "-D", s.DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	if s.Port, err = FreePort(); err != nil {
		s.cleanup()
		return nil, err
	}
	conf := []string{
		"",
		"# pgtest",
		fmt.Sprintf("port = %d", s.Port),
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("unix_socket_directories = '%s'", s.SocketDir),
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"max_connections = 60",
		"shared_buffers = 16MB",
		"logging_collector = off",
		"log_min_messages = warning",
	}
	conf = append(conf, opts.Conf...)
	f, err := os.OpenFile(filepath.Join(s.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(strings.Join(conf, "\n") + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("pgtest: postgresql.conf: %w", err)
	}
	if err := s.Start(); err != nil {
		s.cleanup()
		return nil, err
	}
	return s, nil
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts a stopped server and waits until it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	if s.closed {
		return errors.New("pgtest: server is closed")
	}
	logFile := filepath.Join(s.Dir, "server.log")
	if out, err := s.run(s.BinDir+"/pg_ctl", "-D", s.DataDir, "-l", logFile, "-w", "-t", "60", "start"); err != nil {
		tail, _ := os.ReadFile(logFile)
		return fmt.Errorf("pgtest: pg_ctl start: %w\n%s\n%s", err, out, lastLines(tail, 20))
	}
	s.running = true
	return nil
}

// Stop stops the server (fast shutdown: clients are disconnected).
func (s *Server) Stop() error { return s.stop("fast") }

// Crash stops the server the hard way (immediate shutdown), as a crash would.
func (s *Server) Crash() error { return s.stop("immediate") }

func (s *Server) stop(mode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	if out, err := s.run(s.BinDir+"/pg_ctl", "-D", s.DataDir, "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	s.running = false
	return nil
}

// Close stops the server and removes its directory. Safe on nil and twice.
func (s *Server) Close() {
	if s == nil {
		return
	}
	_ = s.Stop()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// DSN returns a URL for database db as user postgres over TCP.
func (s *Server) DSN(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// Connect opens a connection for test set-up, closed in t.Cleanup.
func (s *Server) Connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// Exec runs statements on database db with a fresh connection.
func (s *Server) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// MustExec is Exec failing the test on error.
func (s *Server) MustExec(t testing.TB, db, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Exec(ctx, db, sql); err != nil {
		t.Fatalf("pgtest: exec %q: %v", sql, err)
	}
}

// NewReplica makes a streaming replica of s with pg_basebackup and starts
// it on its own port. Close it like any server.
func (s *Server) NewReplica() (*Server, error) {
	r := &Server{BinDir: s.BinDir, Version: s.Version, runAs: s.runAs}
	var err error
	if r.Dir, err = os.MkdirTemp("", "pgtest-replica-"); err != nil {
		return nil, err
	}
	r.DataDir = filepath.Join(r.Dir, "data")
	r.SocketDir = filepath.Join(r.Dir, "sock")
	if err := os.Mkdir(r.SocketDir, 0o700); err != nil {
		r.cleanup()
		return nil, err
	}
	if err := r.chown(r.Dir, r.SocketDir); err != nil {
		r.cleanup()
		return nil, err
	}
	if out, err := r.run(s.BinDir+"/pg_basebackup", "-D", r.DataDir, "-h", s.SocketDir, "-p", strconv.Itoa(s.Port),
		"-U", "postgres", "-R", "-X", "stream", "--no-sync"); err != nil {
		r.cleanup()
		return nil, fmt.Errorf("pgtest: pg_basebackup: %w\n%s", err, out)
	}
	if r.Port, err = FreePort(); err != nil {
		r.cleanup()
		return nil, err
	}
	conf := fmt.Sprintf("\n# pgtest replica\nport = %d\nunix_socket_directories = '%s'\n", r.Port, r.SocketDir)
	f, err := os.OpenFile(filepath.Join(r.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		r.cleanup()
		return nil, err
	}
	if err := r.Start(); err != nil {
		r.cleanup()
		return nil, err
	}
	return r, nil
}

// run runs a server binary, as the postgres user when we are root.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	var cmd *exec.Cmd
	if s.runAs != nil {
		cmd = exec.Command("runuser", append([]string{"-u", s.runAs.Username, "--", name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Dir = os.TempDir()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

func (s *Server) chown(paths ...string) error {
	if s.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(s.runAs.Uid)
	gid, _ := strconv.Atoi(s.runAs.Gid)
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("pgtest: chown %s: %w", p, err)
		}
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
