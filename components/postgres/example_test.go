package postgres

import (
	"os"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	_ "github.com/sluicehq/sluice/components/cache" // cache, used by the example
	_ "github.com/sluicehq/sluice/components/sink"  // metrics_sink, used by the example
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

// exampleBody returns the body of the postgres_source block of an example.
func exampleBody(t *testing.T, path string) string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclparse.NewParser().ParseHCL(src, path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if b.Type == Name {
			r := b.Body.Range()
			return string(src[r.Start.Byte+1 : r.End.Byte-1]) // inside the braces
		}
	}
	t.Fatalf("%s has no %s block", path, Name)
	return ""
}

const dbCollectorExample = "../../config/examples/db-collector.hcl"

func TestExampleDBCollectorValidates(t *testing.T) {
	src, err := os.ReadFile(dbCollectorExample)
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	if err := runtime.Validate(dbCollectorExample, src, noEnv); err != nil {
		t.Fatalf("the whole file, with the real loader: %v", err)
	}
	body := exampleBody(t, dbCollectorExample)
	if _, diags := pipelinetest.Decode(t, Name, body, pipelinetest.WithEnv(map[string]string{})); diags.HasErrors() {
		t.Fatalf("with its default dsn: %v", diags)
	}
}

func TestExampleDBCollectorEndToEnd(t *testing.T) {
	s := server(t)
	s.MustExec(t, "postgres", `
		CREATE TABLE shop_orders (id serial PRIMARY KEY, status text NOT NULL, amount_cents bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO shop_orders (status, amount_cents, created_at) VALUES
		  ('paid', 1250, now() - interval '2 hours'), ('paid', 750, now()), ('pending', 999, now() - interval '10 minutes'),
		  ('refunded', 100, now());`)
	h := pipelinetest.New(t, Name, exampleBody(t, dbCollectorExample),
		pipelinetest.WithEnv(map[string]string{"DATABASE_URL": s.DSN("")}))
	h.Start()
	waitQueries(t, h, "orders_by_status", statusSuccess, 1, 15*time.Second)
	g := h.Gatherer()
	for status, want := range map[string][2]float64{"paid": {2, 20}, "pending": {1, 9.99}, "refunded": {1, 1}} {
		l := map[string]string{"status": status}
		if v, ok := value(t, g, "shop_orders", l); !ok || v != want[0] {
			t.Errorf("shop_orders{status=%q} = %v, %v; want %v", status, v, ok, want[0])
		}
		if v, ok := value(t, g, "shop_orders_amount", l); !ok || v != want[1] {
			t.Errorf("shop_orders_amount{status=%q} = %v, %v; want %v", status, v, ok, want[1])
		}
	}
	if v, _ := value(t, g, "shop_orders_oldest_age_seconds", map[string]string{"status": "paid"}); v < 7000 {
		t.Errorf("oldest paid order age = %v, want about 7200", v)
	}
	// The built-in collectors of the example run too.
	for _, c := range builtinNames() {
		waitQueries(t, h, c, statusSuccess, 1, 15*time.Second)
	}
	if v, _ := value(t, g, "pg_up", map[string]string{}); v != 1 {
		t.Errorf("pg_up = %v", v)
	}
}
