package postgres

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testing/pgtest"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// These tests count what the server did, from its log: the component's
// connections ask for log_statement = all (a startup parameter, allowed
// for the superuser the tests connect as), so every statement they run is
// logged with its backend's pid (the default log_line_prefix is
// '%m [%p] '), and a cancelled statement logs an ERROR on the same pid
// saying why.

// loggedDSN is s's DSN with every statement of the connection logged.
func loggedDSN(s *pgtest.Server) string { return s.DSN("") + "&log_statement=all" }

// serverLog is what the server log says about the backends that ran
// statements containing a marker.
type serverLog struct {
	executions  int          // statements containing the marker
	timeouts    int          // "canceling statement due to statement timeout" on those backends
	userCancels int          // "canceling statement due to user request" (a CancelRequest) on those backends
	pids        map[int]bool // backends that ran the marker statement
}

func (l serverLog) String() string {
	return fmt.Sprintf("executions=%d statement_timeout=%d user_request=%d backends=%d", l.executions, l.timeouts, l.userCancels, len(l.pids))
}

var logLineRE = regexp.MustCompile(`\[(\d+)\] (LOG|ERROR):\s+(.*)$`)

// readServerLog parses s's log. Only connections with log_statement = all
// log their statements, so the marker's pids are this test's backends.
func readServerLog(t *testing.T, s *pgtest.Server, marker string) serverLog {
	t.Helper()
	f, err := os.Open(filepath.Join(s.Dir, "server.log"))
	if err != nil {
		t.Fatalf("server log: %v", err)
	}
	defer f.Close()
	l := serverLog{pids: map[int]bool{}}
	var errs []struct {
		pid int
		msg string
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := logLineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var pid int
		fmt.Sscan(m[1], &pid)
		switch {
		case m[2] == "LOG" && (strings.HasPrefix(m[3], "statement: ") || strings.HasPrefix(m[3], "execute ")) && strings.Contains(m[3], marker):
			l.executions++
			l.pids[pid] = true
		case m[2] == "ERROR":
			errs = append(errs, struct {
				pid int
				msg string
			}{pid, m[3]})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("server log: %v", err)
	}
	for _, e := range errs {
		if !l.pids[e.pid] {
			continue
		}
		switch e.msg {
		case "canceling statement due to statement timeout":
			l.timeouts++
		case "canceling statement due to user request":
			l.userCancels++
		}
	}
	return l
}

// waitServerLog polls the server log until cond holds, and fails the test
// with the log of the marker's backends if it does not within 10s.
func waitServerLog(t *testing.T, s *pgtest.Server, marker, what string, cond func(serverLog) bool) serverLog {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := readServerLog(t, s, marker)
		if cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("server log: %s: not within 10s (%v); its backends' lines:\n%s", what, l, backendLines(t, s, l.pids))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backendLines returns the log lines of the given backends.
func backendLines(t *testing.T, s *pgtest.Server, pids map[int]bool) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		for pid := range pids {
			if strings.Contains(line, fmt.Sprintf("[%d] ", pid)) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

// sleeping counts app's backends inside pg_sleep: their statement is
// executing, past parsing and planning.
func sleeping(t *testing.T, s *pgtest.Server, app string) int {
	t.Helper()
	return queryInt(t, s, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'PgSleep'", app)
}

// The reproduction of issue 7 item 7: timeout = 1s and a statement that
// sleeps 10s. The server's statement_timeout must end the statement, once,
// on its own backend; nothing may run it again or cancel a backend a
// second time; and the connection goes back to the pool healthy.
func TestTimedOutStatementIsCancelledOnce(t *testing.T) {
	s := server(t)
	app := uniqueApp(t)
	marker := app // unique per run: -count=N reuses the server and its log
	// max_conns = 1: every run of both queries shares one connection, so
	// a poisoned connection (a stray cancel, an aborted transaction) would
	// fail the fast query, and a destroyed one would show as a second pid.
	h := pipelinetest.New(t, Name, fmt.Sprintf(`
		dsn              = %q
		application_name = %q
		max_conns        = 1
		default_interval = "1h"
		query "sleepy" {
		  sql      = "SELECT 1 AS one FROM pg_sleep(10) -- %s"
		  interval = "1500ms"
		  timeout  = "1s"
		  metric "sleepy_one" { value = "one" }
		}
		query "fast" {
		  sql      = "SELECT 1 AS one"
		  interval = "200ms"
		  metric "fast_one" { value = "one" }
		}`, loggedDSN(s), app, marker))
	h.Start()
	waitQueries(t, h, "sleepy", statusTimeout, 3, 30*time.Second)
	// The next statement on the pool works: the fast query succeeds on the
	// connection the last timed-out statement used.
	waitQueries(t, h, "fast", statusSuccess, queries(t, h, "fast", statusSuccess)+1, 10*time.Second)
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return activeCount(t, s, app) == 0 }, "no statement left running")

	// Stop may have caught a statement mid-run: that one is cancelled by
	// the component (a CancelRequest, "user request"), and not counted.
	// Every other statement is counted once and cancelled once, by the
	// server's statement_timeout.
	l := waitServerLog(t, s, marker, "every statement is cancelled exactly once", func(l serverLog) bool {
		return l.executions == l.timeouts+l.userCancels
	})
	counted := int(queries(t, h, "sleepy", statusTimeout))
	t.Logf("server: %v; component: %d timeouts", l, counted)
	if l.userCancels > 1 {
		t.Errorf("%d statements were cancelled by user request (%v); only the one Stop interrupts may be", l.userCancels, l)
	}
	// One statement per run. The last run may be uncounted: Stop caught
	// its statement running, or overtook the run right after the server
	// cancelled it.
	if extra := l.executions - counted; extra != 0 && extra != 1 {
		t.Errorf("the server ran the statement %d times for %d timed-out runs; want one statement per run (%v)", l.executions, counted, l)
	}
	if len(l.pids) != 1 {
		t.Errorf("the statement ran on %d backends; with max_conns = 1 a healthy connection is reused by every run", len(l.pids))
	}
	// Skipped ticks are not checked: whether a 1 s run fits a 1.5 s
	// interval depends on how loaded the machine is, and the counts above
	// already catch a run that executes twice (the cause of the skips the
	// issue reported).
	for _, c := range [][2]string{{"sleepy", statusError}, {"fast", statusError}} {
		if n := queries(t, h, c[0], c[1]); n != 0 {
			t.Errorf("%s: %s = %v, want 0", c[0], c[1], n)
		}
	}
}

// Stopping the component while a statement runs cancels that statement
// once, on its own backend, and closes the pool: no connection is left.
func TestStopDuringQueryCancelsItOnce(t *testing.T) {
	s := server(t)
	app := uniqueApp(t)
	marker := app // unique per run: -count=N reuses the server and its log
	h := pipelinetest.New(t, Name, fmt.Sprintf(`
		dsn              = %q
		application_name = %q
		query "hang" {
		  sql     = "SELECT 1 AS one FROM pg_sleep(60) -- %s"
		  timeout = "120s"
		  metric "hang_one" { value = "one" }
		}`, loggedDSN(s), app, marker))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return sleeping(t, s, app) == 1 }, "pg_sleep is running")
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return queryInt(t, s, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app) == 0
	}, "the pool closed all its connections")
	l := waitServerLog(t, s, marker, "the statement is cancelled", func(l serverLog) bool { return l.userCancels >= 1 })
	if l.executions != 1 || l.userCancels != 1 || l.timeouts != 0 || len(l.pids) != 1 {
		t.Errorf("server: %v; want one statement, cancelled once by the component", l)
	}
	for _, st := range statuses {
		if n := queries(t, h, "hang", st); n != 0 {
			t.Errorf("%s = %v: a run Stop interrupted is not an outcome of the query", st, n)
		}
	}
}

// A reload that changes a running query stops its old run: the statement
// is cancelled once, the pool stays, and the new definition runs on it.
func TestReloadDuringQueryCancelsItOnce(t *testing.T) {
	s := server(t)
	app := uniqueApp(t)
	marker := app // unique per run: -count=N reuses the server and its log
	cfg := func(sql string) string {
		return fmt.Sprintf(`
		dsn              = %q
		application_name = %q
		max_conns        = 1
		query "q" {
		  sql      = %q
		  interval = "200ms"
		  timeout  = "120s"
		  metric "reload_q" { value = "one" }
		}`, loggedDSN(s), app, sql)
	}
	h := pipelinetest.New(t, Name, cfg("SELECT 1 AS one FROM pg_sleep(60) -- "+marker))
	h.Start()
	c := h.Component.(*Component)
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return sleeping(t, s, app) == 1 }, "pg_sleep is running")
	pools := c.currentPools()
	if err := h.Update(cfg("SELECT 2 AS one")); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool { v, _ := value(t, h.Gatherer(), "reload_q", map[string]string{}); return v == 2 }, "the new query runs")
	waitQueries(t, h, "q", statusSuccess, 3, 10*time.Second)
	if c.currentPools() != pools {
		t.Error("the pool was replaced by a query change")
	}
	l := waitServerLog(t, s, marker, "the old statement is cancelled", func(l serverLog) bool { return l.userCancels >= 1 })
	if l.executions != 1 || l.userCancels != 1 || l.timeouts != 0 {
		t.Errorf("server: %v; want the old statement run once and cancelled once", l)
	}
	if n := queries(t, h, "q", statusError) + queries(t, h, "q", statusTimeout); n != 0 {
		t.Errorf("%v failed runs after the reload", n)
	}
}

// When the server does not answer (here: its backend is stopped with
// SIGSTOP, as a hung host or a network stall would look), the client's
// deadline ends the run statementGrace after the timeout. The connection
// is closed, not returned, and the statement is not run again: a retry
// would only load a server that is already too slow.
func TestUnansweredTimeoutIsNotRetried(t *testing.T) {
	s := server(t)
	app := uniqueApp(t)
	marker := app
	h := pipelinetest.New(t, Name, fmt.Sprintf(`
		dsn              = %q
		application_name = %q
		query "stalled" {
		  sql      = "SELECT 1 AS one FROM pg_sleep(10) -- %s"
		  interval = "1h"
		  timeout  = "1s"
		  metric "stalled_one" { value = "one" }
		}`, loggedDSN(s), app, marker))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return sleeping(t, s, app) == 1 }, "pg_sleep is running")
	pid := queryInt(t, s, "postgres", "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'PgSleep'", app)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Skipf("cannot stop the backend (the server runs as another user?): %v", err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT %d: %v", pid, err)
			}
		}
	}
	t.Cleanup(resume)
	waitQueries(t, h, "stalled", statusTimeout, 1, 20*time.Second)
	resume()
	// The backend, resumed, finds its statement cancelled and its client
	// gone.
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return queryInt(t, s, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid) == 0
	}, "the stalled backend exits")
	l := waitServerLog(t, s, marker, "the statement is cancelled", func(l serverLog) bool { return l.timeouts+l.userCancels >= 1 })
	if l.executions != 1 || l.timeouts+l.userCancels != 1 {
		t.Errorf("server: %v; want the statement run once and cancelled once (no retry after a timeout)", l)
	}
	if n := queries(t, h, "stalled", statusTimeout); n != 1 {
		t.Errorf("timeout = %v, want 1", n)
	}
	if n := queries(t, h, "stalled", statusError); n != 0 {
		t.Errorf("error = %v, want 0", n)
	}
}
