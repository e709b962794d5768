package postgres

import (
	"errors"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The DSN is a secret. pgx's errors may quote it (ParseConfigError redacts
// the password only on a best-effort basis; ConnectError quotes user and
// database between backticks), so nothing pgx says about the connection
// string reaches a log, an error or the API unfiltered.

// errInvalidDSN is the whole message for a DSN that does not parse: any
// detail from the parser could quote part of the secret.
var errInvalidDSN = errors.New("dsn is not a valid PostgreSQL connection string (use a URL such as postgres://user@host:5432/db or key=value pairs such as \"host=db dbname=shop\"; the value is not shown because it may hold a password)")

// parsePoolConfig parses the DSN and applies the connection arguments.
func parsePoolConfig(a Arguments) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(a.DSN)
	if err != nil {
		return nil, errInvalidDSN
	}
	cfg.MaxConns = int32(min(a.MaxConns, 1<<20))
	cfg.MinConns = 0
	if a.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = a.ConnectTimeout
	}
	if a.ApplicationName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = a.ApplicationName
	}
	// A context that ends mid-statement (Stop, reload, a server that does
	// not answer within statementGrace) closes the connection: pgx sends
	// one cancel request for the statement as it closes, and the pool
	// never hands the connection out again. This is pgx's default, pinned
	// here because the alternative, CancelRequestContextWatcherHandler,
	// keeps the connection, and its cancel request can land after the
	// statement ended, on the next borrower's statement.
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	return cfg, nil
}

var backticked = regexp.MustCompile("`[^`]*`")

// redactor removes secrets from error text.
type redactor struct {
	secrets []string
}

func newRedactor(dsn string, cfg *pgxpool.Config) redactor {
	r := redactor{}
	add := func(s string) {
		if len(s) >= 3 {
			r.secrets = append(r.secrets, s)
		}
	}
	add(dsn)
	if cfg != nil {
		add(cfg.ConnConfig.Password)
	}
	return r
}

// Error returns err's text with every secret and every backtick-quoted
// connection description removed.
func (r redactor) Error(err error) string {
	if err == nil {
		return ""
	}
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		return errInvalidDSN.Error()
	}
	msg := err.Error()
	for _, s := range r.secrets {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
	}
	return backticked.ReplaceAllString(msg, "`[redacted]`")
}
