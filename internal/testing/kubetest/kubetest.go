// Package kubetest runs a throwaway Kubernetes API server for tests: Debian's
// etcd and a kube-apiserver built once by scripts/ensure-kube-apiserver.sh,
// both on free loopback ports with their state in a temporary directory.
// There is no controller-manager, scheduler or kubelet: tests write the
// status subresources themselves, as a controller would.
//
// Two bearer tokens authenticate: Admin (group system:masters) and
// Restricted (user "sluice", no groups: it can do nothing until a test binds
// it to a role). Authorization is RBAC, so role manifests are tested for
// real.
//
//	srv := kubetest.Start(t) // skips locally when not installed, fails under CI=true
//	cs := kubernetes.NewForConfigOrDie(srv.AdminConfig())
//
// Restart kills the API server (SIGKILL) and starts it again on the same
// port, keeping etcd: clients see dropped watches and connection errors.
package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/sluicehq/sluice/internal/testing/realpart"
)

// Version is the kube-apiserver version scripts/ensure-kube-apiserver.sh builds.
const Version = "v1.37.2"

// Tokens of the two users.
const (
	AdminToken      = "kubetest-admin-token"
	RestrictedToken = "kubetest-restricted-token"
	// RestrictedUser is the restricted token's user name (for bindings).
	RestrictedUser = "sluice"
)

// ErrNotInstalled is returned when etcd or the kube-apiserver binary is missing.
var ErrNotInstalled = errors.New("kubetest: kube-apiserver or etcd not installed (run `make deps`, i.e. scripts/ensure-kube-apiserver.sh)")

// SkipShort skips the test under go test -short: the fast lane starts no
// kube-apiserver. Start and Check call it; a helper that shares one
// server (sync.Once) calls it before New.
func SkipShort(t testing.TB) {
	t.Helper()
	realpart.SkipShort(t, "a real kube-apiserver and etcd")
}

// Check skips the test when err is ErrNotInstalled outside CI, and fails it
// otherwise (a missing server is a failure under CI=true). It skips under
// -short (SkipShort).
func Check(t testing.TB, err error) {
	t.Helper()
	SkipShort(t)
	realpart.Check(t, err, ErrNotInstalled)
}

// APIServerPath is where scripts/ensure-kube-apiserver.sh puts the binary
// ($KUBETEST_APISERVER overrides).
func APIServerPath() string {
	if p := os.Getenv("KUBETEST_APISERVER"); p != "" {
		return p
	}
	cache := os.Getenv("SLUICE_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "sluice")
	}
	return filepath.Join(cache, "kube-apiserver-"+Version, "kube-apiserver")
}

func findBinaries() (apiserver, etcd string, err error) {
	apiserver = APIServerPath()
	if _, err := os.Stat(apiserver); err != nil {
		return "", "", fmt.Errorf("%w: %s: %v", ErrNotInstalled, apiserver, err)
	}
	if etcd, err = exec.LookPath("etcd"); err != nil {
		return "", "", fmt.Errorf("%w: etcd: %v", ErrNotInstalled, err)
	}
	return apiserver, etcd, nil
}

// Server is a running etcd + kube-apiserver pair.
type Server struct {
	Dir  string
	Host string // https://127.0.0.1:PORT
	// CAData is the PEM of the CA that signed the serving certificate.
	CAData []byte

	apiserverBin string
	apiArgs      []string
	port         int

	mu     sync.Mutex
	etcd   *exec.Cmd
	api    *exec.Cmd
	apiLog *os.File
	closed bool
}

// Start starts a server for one test (or a package: call it from a
// sync.Once helper) and stops it at t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	SkipShort(t)
	s, err := New()
	Check(t, err)
	t.Cleanup(s.Close)
	return s
}

// New starts etcd and the API server and waits until the server is ready.
func New() (*Server, error) {
	apiBin, etcdBin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	s := &Server{apiserverBin: apiBin}
	if s.Dir, err = os.MkdirTemp("", "kubetest-"); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	s.port = ports[2]
	s.Host = fmt.Sprintf("https://127.0.0.1:%d", s.port)

	etcdLog, err := os.Create(filepath.Join(s.Dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	s.etcd = exec.Command(etcdBin,
		"--name=kubetest",
		"--data-dir="+filepath.Join(s.Dir, "etcd"),
		"--listen-client-urls="+etcdClient, "--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer, "--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=kubetest="+etcdPeer,
		"--unsafe-no-fsync",
		"--log-level=warn")
	s.etcd.Stdout, s.etcd.Stderr = etcdLog, etcdLog
	s.etcd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.etcd.Start(); err != nil {
		return nil, fmt.Errorf("kubetest: start etcd: %w", err)
	}
	etcdLog.Close()
	if err := waitHTTP(etcdClient+"/health", nil, "", 30*time.Second); err != nil {
		return nil, fmt.Errorf("kubetest: etcd not ready: %w\n%s", err, tail(filepath.Join(s.Dir, "etcd.log")))
	}

	if err := s.writeFiles(); err != nil {
		return nil, err
	}
	f := func(n string) string { return filepath.Join(s.Dir, n) }
	s.apiArgs = []string{
		"--etcd-servers=" + etcdClient,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", s.port),
		"--cert-dir=" + f("certs"),
		"--tls-cert-file=" + f("serving.crt"),
		"--tls-private-key-file=" + f("serving.key"),
		"--client-ca-file=" + f("ca.crt"),
		"--token-auth-file=" + f("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + f("sa.pub"),
		"--service-account-signing-key-file=" + f("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		// The loopback advertise address is refused by the default
		// endpoint reconciler; no controller-manager runs to create the
		// default ServiceAccount that admission would require for pods.
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false",
		"--v=0",
	}
	if err := s.startAPI(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func (s *Server) startAPI() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("kubetest: closed")
	}
	lf, err := os.OpenFile(filepath.Join(s.Dir, "apiserver.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.apiserverBin, s.apiArgs...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("kubetest: start kube-apiserver: %w", err)
	}
	s.api, s.apiLog = cmd, lf
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Unlock()
	err = waitHTTP(s.Host+"/readyz", s.CAData, AdminToken, 90*time.Second, exited)
	s.mu.Lock()
	if err != nil {
		return fmt.Errorf("kubetest: kube-apiserver not ready: %w\n%s", err, tail(filepath.Join(s.Dir, "apiserver.log")))
	}
	return nil
}

// stopAPI kills the API server (a graceful stop takes ~10 s).
func (s *Server) stopAPI() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.api != nil && s.api.Process != nil {
		_ = syscall.Kill(-s.api.Process.Pid, syscall.SIGKILL)
		_ = s.api.Process.Kill()
		s.api = nil
	}
	if s.apiLog != nil {
		s.apiLog.Close()
		s.apiLog = nil
	}
}

// Stop kills the API server; etcd keeps running. Start it again with
// StartAgain.
func (s *Server) Stop() { s.stopAPI() }

// StartAgain starts a stopped API server on the same port.
func (s *Server) StartAgain() error {
	var err error
	// The port may linger for a moment after the kill.
	for i := 0; i < 3; i++ {
		if err = s.startAPI(); err == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return err
}

// Restart kills the API server and starts it again on the same port.
func (s *Server) Restart() error {
	s.stopAPI()
	return s.StartAgain()
}

// Close kills both processes and removes the directory.
func (s *Server) Close() {
	s.stopAPI()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.etcd != nil && s.etcd.Process != nil {
		_ = syscall.Kill(-s.etcd.Process.Pid, syscall.SIGKILL)
		_ = s.etcd.Process.Kill()
		_, _ = s.etcd.Process.Wait()
	}
	if s.Dir != "" && os.Getenv("KUBETEST_KEEP") == "" {
		os.RemoveAll(s.Dir)
	}
}

// Config returns a client config for a bearer token.
func (s *Server) Config(token string) *rest.Config {
	return &rest.Config{
		Host:            s.Host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.CAData},
		QPS:             200,
		Burst:           400,
	}
}

// AdminConfig is a config for the admin (system:masters) token.
func (s *Server) AdminConfig() *rest.Config { return s.Config(AdminToken) }

// RestrictedConfig is a config for the restricted user's token.
func (s *Server) RestrictedConfig() *rest.Config { return s.Config(RestrictedToken) }

// WriteKubeconfig writes a kubeconfig for token into dir and returns its path.
func (s *Server) WriteKubeconfig(dir, token string) (string, error) {
	ca := filepath.Join(s.Dir, "ca.crt")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: user
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: user}
current-context: kubetest
`, s.Host, ca, token)
	p := filepath.Join(dir, "kubeconfig-"+strings.SplitN(token, "-", 3)[1])
	return p, os.WriteFile(p, []byte(kc), 0o600)
}

// APILog returns the end of the API server's log (for failure messages).
func (s *Server) APILog() string { return tail(filepath.Join(s.Dir, "apiserver.log")) }

// writeFiles generates a CA and a serving certificate for 127.0.0.1, the
// service-account key pair and the token file.
func (s *Server) writeFiles() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubetest-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost", "kubernetes.default.svc"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	s.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	files := map[string][]byte{
		"ca.crt":      s.CAData,
		"serving.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		"serving.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER}),
		"sa.key":      pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
		"sa.pub":      pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		"tokens.csv": []byte(AdminToken + ",kubetest-admin,uid-admin,\"system:masters\"\n" +
			RestrictedToken + "," + RestrictedUser + ",uid-sluice\n"),
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "certs"), 0o700); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kubetest: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHTTP polls url until it answers 200, the deadline passes, or one of
// exited closes (the process died).
func waitHTTP(url string, caPEM []byte, token string, timeout time.Duration, exited ...chan struct{}) error {
	tr := &http.Transport{}
	if caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, e := range exited {
			select {
			case <-e:
				return errors.New("process exited")
			default:
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		cancel()
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("timeout after %s: %v", timeout, last)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
