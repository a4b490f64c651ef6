package dbadmin

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
	"github.com/smartcloudops/smartcloudops/internal/store"
)

// Suggestion is an index the advisor proposes, with the statement it serves
// and what the planner said about that statement.
type Suggestion struct {
	ID      string   `json:"id"`
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
	// SQL is the statement CreateIndex would run.
	SQL     string  `json:"sql"`
	QueryID string  `json:"query_id"`
	Query   string  `json:"query"`
	Calls   int64   `json:"calls"`
	TotalMS float64 `json:"total_time_ms"`
	MeanMS  float64 `json:"mean_time_ms"`
	// Evidence are the plan lines that show the problem (a full scan, an
	// automatic index, a sort) and, with hypopg, the cost with the index.
	Evidence   []string `json:"evidence"`
	CostBefore *float64 `json:"cost_before,omitempty"`
	CostAfter  *float64 `json:"cost_after,omitempty"`
}

// IndexReport is the body of GET /performance/database/indexes.
type IndexReport struct {
	Driver      string         `json:"driver"`
	AutoIndex   bool           `json:"auto_index"`
	Hypopg      bool           `json:"hypopg"`
	Suggestions []Suggestion   `json:"suggestions"`
	Created     []CreatedIndex `json:"created"`
}

// Advisor thresholds: a read is examined once it ran advisorMinCalls times or
// is slow on average; tables smaller than advisorMinRows are left alone,
// because scanning them is what the planner should do.
const (
	advisorMinCalls  = 10
	advisorMinRows   = 1000
	advisorMaxChecks = 20
	measureRuns      = 5
)

// Indexes reports the current suggestions and the indexes created so far.
func (ad *Admin) Indexes(ctx context.Context) (IndexReport, error) {
	// With nothing yet worth asking the planner about, Advise would not
	// touch the database: without this check an unreachable one would
	// still get a clean, empty report.
	if err := ad.st.Ping(ctx); err != nil {
		return IndexReport{}, fmt.Errorf("store: index report: %w", err)
	}
	sug, err := ad.Advise(ctx)
	rep := IndexReport{Driver: string(ad.kind), AutoIndex: ad.autoIndex, Hypopg: ad.hasHypopg(ctx), Suggestions: sug}
	ad.mu.Lock()
	rep.Created = append([]CreatedIndex{}, ad.created...)
	ad.mu.Unlock()
	return rep, err
}

// Advise asks the planner about the frequent and slow reads seen so far and
// proposes indexes for those it would scan or sort, skipping any an existing
// index already covers.
func (ad *Admin) Advise(ctx context.Context) ([]Suggestion, error) {
	out := []Suggestion{}
	seen := map[string]bool{}
	for _, c := range ad.diag.Candidates(advisorMinCalls, ad.diag.SlowQueryThreshold(), advisorMaxChecks) {
		sug, err := ad.adviseOne(ctx, c)
		if err != nil {
			if ctx.Err() != nil || store.Unavailable(err) {
				return out, err
			}
			continue // a statement the planner refuses (dropped table …) is not a reason to stop
		}
		for _, sg := range sug {
			if !seen[sg.ID] {
				seen[sg.ID] = true
				out = append(out, sg)
			}
		}
	}
	return out, nil
}

// problem is what the planner showed for one table of a statement.
type problem struct {
	table    string
	sorts    bool
	evidence []string
	autoCols []string // SQLite's automatic index columns, the planner's own proposal
}

func (ad *Admin) adviseOne(ctx context.Context, c store.Candidate) ([]Suggestion, error) {
	p := parseSelect(c.Text)
	var (
		probs []problem
		err   error
	)
	if ad.kind == dburl.Postgres {
		probs, err = ad.pgProblems(ctx, c, p)
	} else {
		probs, err = ad.sqliteProblems(ctx, c, p)
	}
	if err != nil {
		return nil, err
	}
	var out []Suggestion
	for _, pr := range probs {
		cols := pr.autoCols
		if len(cols) == 0 {
			cols = p.columnsFor(pr.table, pr.sorts)
		}
		if len(cols) == 0 || ad.diag.CheckColumns(ctx, pr.table, cols) != nil {
			continue
		}
		if ad.kind == dburl.Postgres {
			var rows float64
			if err := ad.read.QueryRowContext(ctx, "SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)", store.QuoteIdent(pr.table)).Scan(&rows); err != nil || rows < advisorMinRows {
				continue
			}
		}
		covered, err := ad.coveredBy(ctx, pr.table, cols)
		if err != nil {
			return nil, err
		}
		if covered != "" {
			continue
		}
		sg := Suggestion{ID: suggestionID(pr.table, cols), Table: pr.table, Columns: cols, SQL: ad.createIndexSQL(indexName(pr.table, cols), pr.table, cols),
			QueryID: c.Stat.QueryID, Query: c.Stat.Query, Calls: c.Stat.Calls, TotalMS: c.Stat.TotalMS, MeanMS: c.Stat.MeanMS, Evidence: pr.evidence}
		if ad.kind == dburl.Postgres {
			ad.hypothetical(ctx, c, &sg)
		}
		out = append(out, sg)
	}
	return out, nil
}

func (ad *Admin) sqliteProblems(ctx context.Context, c store.Candidate, p parsedQuery) ([]problem, error) {
	plan, err := ad.diag.Explain(ctx, c.Text, c.Args)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(plan, "\n")
	byTable := map[string]*problem{}
	var order []string
	get := func(alias string) *problem {
		t := p.tables[strings.ToLower(alias)]
		if t == "" {
			t = strings.ToLower(alias)
		}
		if byTable[t] == nil {
			byTable[t] = &problem{table: t}
			order = append(order, t)
		}
		return byTable[t]
	}
	var last *problem
	for _, raw := range lines {
		l := strings.TrimSpace(raw)
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "SCAN" && !strings.Contains(l, "USING") && !strings.HasPrefix(f[1], "CONSTANT"):
			pr := get(f[1])
			pr.evidence = append(pr.evidence, "full scan: "+l)
			last = pr
		case strings.Contains(l, "AUTOMATIC") && len(f) >= 2:
			pr := get(f[1])
			pr.evidence = append(pr.evidence, "automatic index built per query: "+l)
			if i, j := strings.Index(l, "("), strings.LastIndex(l, ")"); i >= 0 && j > i {
				for _, part := range strings.Split(l[i+1:j], " AND ") {
					col := strings.TrimSpace(part)
					for _, op := range []string{"=", ">", "<"} {
						if k := strings.Index(col, op); k > 0 {
							col = col[:k]
						}
					}
					pr.autoCols = append(pr.autoCols, strings.ToLower(strings.TrimSpace(col)))
				}
			}
			last = pr
		case strings.HasPrefix(l, "SEARCH") && len(f) >= 2:
			last = get(f[1])
		case strings.Contains(l, "USE TEMP B-TREE FOR ORDER BY"):
			// The sort belongs to the single table read, or the last one scanned.
			if len(uniqueTables(p.tables)) == 1 {
				for t := range uniqueTables(p.tables) {
					last = get(t)
				}
			}
			if last != nil {
				last.sorts = true
				last.evidence = append(last.evidence, "sort: "+l)
			}
		}
	}
	var out []problem
	for _, t := range order {
		if pr := byTable[t]; len(pr.evidence) > 0 {
			out = append(out, *pr)
		}
	}
	return out, nil
}

// pgPlanNode is the part of EXPLAIN (FORMAT JSON) the advisor reads.
type pgPlanNode struct {
	NodeType  string       `json:"Node Type"`
	Relation  string       `json:"Relation Name"`
	Alias     string       `json:"Alias"`
	Filter    string       `json:"Filter"`
	SortKey   []string     `json:"Sort Key"`
	PlanRows  float64      `json:"Plan Rows"`
	TotalCost float64      `json:"Total Cost"`
	IndexName string       `json:"Index Name"`
	Plans     []pgPlanNode `json:"Plans"`
}

func (ad *Admin) pgPlan(ctx context.Context, text string, args []any) (pgPlanNode, string, error) {
	raw, err := ad.diag.Explain(ctx, text, args)
	if err != nil {
		return pgPlanNode{}, "", err
	}
	var doc []struct {
		Plan pgPlanNode `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil || len(doc) == 0 {
		return pgPlanNode{}, raw, fmt.Errorf("store: explain: unreadable plan: %w", err)
	}
	return doc[0].Plan, raw, nil
}

func (ad *Admin) pgProblems(ctx context.Context, c store.Candidate, p parsedQuery) ([]problem, error) {
	root, _, err := ad.pgPlan(ctx, c.Text, c.Args)
	if err != nil {
		return nil, err
	}
	byTable := map[string]*problem{}
	var order []string
	var walk func(n pgPlanNode, sortAbove bool)
	walk = func(n pgPlanNode, sortAbove bool) {
		if n.NodeType == "Sort" {
			sortAbove = true
		}
		if n.NodeType == "Seq Scan" && n.Relation != "" && (n.Filter != "" || sortAbove) {
			t := strings.ToLower(n.Relation)
			pr := byTable[t]
			if pr == nil {
				pr = &problem{table: t}
				byTable[t] = pr
				order = append(order, t)
			}
			ev := fmt.Sprintf("Seq Scan on %s (estimated %.0f rows, cost %.1f)", n.Relation, n.PlanRows, n.TotalCost)
			if n.Filter != "" {
				ev += " Filter: " + n.Filter
			}
			pr.evidence = append(pr.evidence, ev)
			pr.sorts = pr.sorts || sortAbove
			if sortAbove {
				pr.evidence = append(pr.evidence, "Sort above the scan")
			}
		}
		for _, ch := range n.Plans {
			walk(ch, sortAbove)
		}
	}
	walk(root, false)
	out := make([]problem, 0, len(order))
	for _, t := range order {
		out = append(out, *byTable[t])
	}
	return out, nil
}

// hasHypopg reports whether hypothetical indexes can be asked for.
func (ad *Admin) hasHypopg(ctx context.Context) bool {
	if ad.kind != dburl.Postgres {
		return false
	}
	var ok bool
	err := ad.read.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg')").Scan(&ok)
	return err == nil && ok
}

// hypothetical asks hypopg, when installed, for the statement's cost with the
// proposed index, on one connection (hypothetical indexes are per session).
func (ad *Admin) hypothetical(ctx context.Context, c store.Candidate, sg *Suggestion) {
	if !ad.hasHypopg(ctx) {
		return
	}
	conn, err := ad.read.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT hypopg_reset()") //nolint:errcheck // best effort cleanup
	cost := func() (float64, bool) {
		var raw string
		if err := conn.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) "+c.Text, c.Args...).Scan(&raw); err != nil {
			return 0, false
		}
		var doc []struct {
			Plan pgPlanNode `json:"Plan"`
		}
		if json.Unmarshal([]byte(raw), &doc) != nil || len(doc) == 0 {
			return 0, false
		}
		return doc[0].Plan.TotalCost, true
	}
	before, ok := cost()
	if !ok {
		return
	}
	if _, err := conn.ExecContext(ctx, "SELECT * FROM hypopg_create_index($1)", ad.createIndexSQL("", sg.Table, sg.Columns)); err != nil {
		return
	}
	after, ok := cost()
	if !ok {
		return
	}
	sg.CostBefore, sg.CostAfter = &before, &after
	sg.Evidence = append(sg.Evidence, fmt.Sprintf("hypopg: cost %.1f → %.1f with the index", before, after))
}

// coveredBy names an existing index that already serves cols (cols is a
// prefix of its columns, the equality part in any order), or "".
func (ad *Admin) coveredBy(ctx context.Context, table string, cols []string) (string, error) {
	idx, err := ad.tableIndexes(ctx, table)
	if err != nil {
		return "", err
	}
	for _, ix := range idx {
		if ix.Partial || !ix.Valid || len(ix.Columns) < len(cols) {
			continue
		}
		if slices.Equal(ix.Columns[:len(cols)], cols) {
			return ix.Name, nil
		}
		a, b := slices.Clone(ix.Columns[:len(cols)]), slices.Clone(cols)
		sort.Strings(a)
		sort.Strings(b)
		if slices.Equal(a, b) {
			return ix.Name, nil
		}
	}
	return "", nil
}

func suggestionID(table string, cols []string) string {
	h := fnv.New32a()
	h.Write([]byte(table + "(" + strings.Join(cols, ",") + ")"))
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}

// measure runs a statement a few times on the raw read pool and returns the
// median time and its plan; nil when it cannot be run.
func (ad *Admin) measure(ctx context.Context, c store.Candidate) (*float64, string) {
	plan, _ := ad.diag.Explain(ctx, c.Text, c.Args)
	var times []float64
	for range measureRuns {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		rows, err := ad.read.QueryContext(mctx, c.Text, c.Args...)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		cancel()
		if err != nil {
			return nil, plan
		}
		times = append(times, ms(time.Since(start)))
	}
	sort.Float64s(times)
	med := times[len(times)/2]
	return &med, plan
}
