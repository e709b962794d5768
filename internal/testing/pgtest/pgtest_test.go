package pgtest

import (
	"context"
	"testing"
	"time"
)

func TestServerStopStart(t *testing.T) {
	s := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Exec(ctx, "postgres", "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "postgres", "SELECT 1"); err == nil {
		t.Fatal("stopped server still accepts connections")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	var n int
	conn := s.Connect(t, "postgres")
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatalf("data did not survive a restart: %v", err)
	}
	if s.Version < 10 {
		t.Fatalf("Version = %d", s.Version)
	}
}
