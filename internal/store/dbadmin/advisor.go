package dbadmin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/fingerprint"
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

// CreatedIndex is the outcome of creating an index, re-measured.
type CreatedIndex struct {
	Name      string    `json:"name"`
	Table     string    `json:"table"`
	Columns   []string  `json:"columns"`
	SQL       string    `json:"sql"`
	QueryID   string    `json:"query_id,omitempty"`
	Query     string    `json:"query,omitempty"`
	Auto      bool      `json:"auto"`
	CreatedAt time.Time `json:"created_at"`
	BuildMS   float64   `json:"build_ms"`
	// BeforeMS and AfterMS are the median of a few runs of the served query,
	// before and after the index existed; PlanAfter shows whether it is used.
	BeforeMS   *float64 `json:"before_ms,omitempty"`
	AfterMS    *float64 `json:"after_ms,omitempty"`
	PlanBefore string   `json:"plan_before,omitempty"`
	PlanAfter  string   `json:"plan_after,omitempty"`
	UsesIndex  bool     `json:"uses_index"`
	OK         bool     `json:"ok"`
	Error      string   `json:"error,omitempty"`
}

// IndexRequest asks CreateIndex for an index: a suggestion by id, or a table
// and columns.
type IndexRequest struct {
	SuggestionID string   `json:"suggestion_id,omitempty"`
	Table        string   `json:"table,omitempty"`
	Columns      []string `json:"columns,omitempty"`
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

// parsedQuery is what the advisor reads from a SELECT: its tables by alias,
// and the columns it filters on and orders by.
type parsedQuery struct {
	tables  map[string]string // alias (or name) → table
	eq      []colRef
	rng     []colRef
	orderBy []colRef
}

type colRef struct{ qual, col string }

func parseSelect(q string) parsedQuery {
	toks := fingerprint.Lex(q)
	p := parsedQuery{tables: map[string]string{}}
	depth := 0
	clause := ""
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t {
		case "(":
			depth++
			continue
		case ")":
			depth--
			continue
		}
		if depth != 0 {
			continue
		}
		switch t {
		case "from", "join":
			clause = "from"
			if i+1 < len(toks) && fingerprint.IsWord(toks[i+1]) {
				name := fingerprint.TableName(toks, i+1)
				j := i + 2
				for j+1 < len(toks) && toks[j] == "." {
					j += 2
				}
				alias := name
				if j < len(toks) && toks[j] == "as" {
					j++
				}
				if j < len(toks) && fingerprint.IsWord(toks[j]) && !isClauseWord(toks[j]) {
					alias = strings.Trim(toks[j], "\"`")
				}
				p.tables[alias] = name
				p.tables[name] = name
			}
			continue
		case "where", "on":
			clause = "where"
			continue
		case "group", "having", "limit", "offset", "union", "returning":
			clause = ""
			continue
		case "order":
			if i+1 < len(toks) && toks[i+1] == "by" {
				clause = "order"
				i++
			}
			continue
		}
		if !fingerprint.IsWord(t) || isClauseWord(t) {
			continue
		}
		ref := colRef{col: strings.Trim(t, "\"`")}
		j := i + 1
		if j+1 < len(toks) && toks[j] == "." && fingerprint.IsWord(toks[j+1]) {
			ref = colRef{qual: ref.col, col: strings.Trim(toks[j+1], "\"`")}
			j += 2
		}
		switch clause {
		case "where":
			if j >= len(toks) {
				continue
			}
			switch op := toks[j]; op {
			case "=", "is", "in":
				if j+1 < len(toks) && (toks[j+1] == "?" || toks[j+1] == "(" || toks[j+1] == "not" && op == "is") {
					p.eq = append(p.eq, ref)
				}
			case "<", ">", "<=", ">=", "between", "like":
				p.rng = append(p.rng, ref)
			}
			i = j - 1
		case "order":
			p.orderBy = append(p.orderBy, ref)
			i = j - 1
			for i+1 < len(toks) && (toks[i+1] == "asc" || toks[i+1] == "desc" || toks[i+1] == "nulls" || toks[i+1] == "first" || toks[i+1] == "last") {
				i++
			}
		}
	}
	return p
}

func isClauseWord(t string) bool {
	switch t {
	case "where", "on", "join", "left", "right", "inner", "outer", "cross", "full", "natural", "group", "order", "by", "limit",
		"offset", "having", "union", "and", "or", "not", "as", "using", "select", "from", "is", "in", "null", "between", "like",
		"asc", "desc", "true", "false", "distinct", "case", "when", "then", "else", "end", "exists", "returning", "nulls", "first", "last":
		return true
	}
	return false
}

// columnsFor orders a proposal's columns for one table: equality columns
// first (any order serves them), then one range column, then the ORDER BY
// columns when sorting is part of the problem, which is the order a B-tree
// can serve them in.
func (p parsedQuery) columnsFor(table string, sorts bool) []string {
	belongs := func(r colRef) bool {
		if r.qual != "" {
			return p.tables[r.qual] == table
		}
		return len(uniqueTables(p.tables)) == 1
	}
	var cols []string
	add := func(c string) {
		if !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	for _, r := range p.eq {
		if belongs(r) {
			add(strings.ToLower(r.col))
		}
	}
	rangeCol := ""
	for _, r := range p.rng {
		if belongs(r) && rangeCol == "" {
			rangeCol = strings.ToLower(r.col)
		}
	}
	if sorts {
		ordered := []string{}
		for _, r := range p.orderBy {
			if belongs(r) {
				ordered = append(ordered, strings.ToLower(r.col))
			}
		}
		if rangeCol == "" || len(ordered) > 0 && ordered[0] == rangeCol {
			for _, c := range ordered {
				add(c)
			}
			return cols
		}
	}
	if rangeCol != "" {
		add(rangeCol)
	}
	return cols
}

func uniqueTables(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, t := range m {
		out[t] = true
	}
	return out
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

// indexName is sco_idx_<table>_<columns>, cut to fit PostgreSQL's 63 bytes
// with a hash so that cutting never makes two names equal.
func indexName(table string, cols []string) string {
	n := "sco_idx_" + table + "_" + strings.Join(cols, "_")
	if len(n) > 54 {
		n = n[:54] + "_" + suggestionID(table, cols)
	}
	return n
}

func (ad *Admin) createIndexSQL(name, table string, cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = store.QuoteIdent(c)
	}
	target := store.QuoteIdent(table) + " (" + strings.Join(q, ", ") + ")"
	switch {
	case name == "":
		return "CREATE INDEX ON " + target
	case ad.kind == dburl.Postgres:
		// CONCURRENTLY keeps writes flowing during the build.
		return "CREATE INDEX CONCURRENTLY IF NOT EXISTS " + store.QuoteIdent(name) + " ON " + target
	}
	return "CREATE INDEX IF NOT EXISTS " + store.QuoteIdent(name) + " ON " + target
}

// CreateIndex builds an index the advisor suggested (by id) or one named by
// table and columns, measures the served statement before and after, and
// records the outcome. Bad input is store.ErrInvalid; an index that is already
// covered is refused the same way. The report is returned even when the
// build fails, with OK false.
func (ad *Admin) CreateIndex(ctx context.Context, req IndexRequest) (CreatedIndex, error) {
	return ad.createIndex(ctx, req, false)
}

func (ad *Admin) createIndex(ctx context.Context, req IndexRequest, auto bool) (CreatedIndex, error) {
	var (
		sample *store.Candidate
		sg     *Suggestion
	)
	if req.SuggestionID != "" {
		sugs, err := ad.Advise(ctx)
		if err != nil {
			return CreatedIndex{}, err
		}
		for i := range sugs {
			if sugs[i].ID == req.SuggestionID {
				sg = &sugs[i]
			}
		}
		if sg == nil {
			return CreatedIndex{}, fmt.Errorf("store: create index: %w: no current suggestion %q", store.ErrInvalid, req.SuggestionID)
		}
		req.Table, req.Columns = sg.Table, sg.Columns
		for _, c := range ad.diag.Candidates(0, 0, 1<<30) {
			if c.Stat.QueryID == sg.QueryID {
				c := c
				sample = &c
			}
		}
	}
	if req.Table == "" || len(req.Columns) == 0 {
		return CreatedIndex{}, fmt.Errorf("store: create index: %w: table and columns (or suggestion_id) are required", store.ErrInvalid)
	}
	cols := make([]string, len(req.Columns))
	for i, c := range req.Columns {
		cols[i] = strings.ToLower(strings.TrimSpace(c))
	}
	table := strings.ToLower(req.Table)
	if err := ad.diag.CheckColumns(ctx, table, cols); err != nil {
		return CreatedIndex{}, err
	}
	if by, err := ad.coveredBy(ctx, table, cols); err != nil {
		return CreatedIndex{}, err
	} else if by != "" {
		return CreatedIndex{}, fmt.Errorf("store: create index: %w: %s(%s) is already covered by index %s", store.ErrInvalid, table, strings.Join(cols, ", "), by)
	}

	ad.create.Lock()
	defer ad.create.Unlock()
	name := indexName(table, cols)
	ci := CreatedIndex{Name: name, Table: table, Columns: cols, SQL: ad.createIndexSQL(name, table, cols), Auto: auto, CreatedAt: ad.now().UTC()}
	if sample != nil {
		ci.QueryID, ci.Query = sample.Stat.QueryID, sample.Stat.Query
		ci.BeforeMS, ci.PlanBefore = ad.measure(ctx, *sample)
	}
	start := time.Now()
	_, err := ad.write.ExecContext(ctx, ci.SQL)
	if err == nil && ad.kind == dburl.SQLite {
		// Fresh statistics let the planner weigh the new index at once.
		_, err = ad.write.ExecContext(ctx, "ANALYZE "+store.QuoteIdent(table))
	}
	if err == nil && ad.kind == dburl.Postgres {
		var valid bool
		if qerr := ad.read.QueryRowContext(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", store.QuoteIdent(name)).Scan(&valid); qerr != nil {
			err = qerr
		} else if !valid {
			err = errors.New("index build left an invalid index")
		}
	}
	ci.BuildMS = ms(time.Since(start))
	if err != nil && ad.kind == dburl.Postgres {
		// A failed CONCURRENTLY build leaves an invalid index that still
		// slows writes; remove it.
		_, _ = ad.write.ExecContext(context.WithoutCancel(ctx), "DROP INDEX CONCURRENTLY IF EXISTS "+store.QuoteIdent(name))
	}
	if err != nil {
		ci.Error = store.Describe(err)
		ad.recordCreated(ci)
		return ci, fmt.Errorf("store: create index %s: %w", name, err)
	}
	ci.OK = true
	ad.indexesCreated.Inc()
	if sample != nil {
		ci.AfterMS, ci.PlanAfter = ad.measure(ctx, *sample)
		ci.UsesIndex = strings.Contains(ci.PlanAfter, name)
	}
	ad.recordCreated(ci)
	return ci, nil
}

func (ad *Admin) recordCreated(ci CreatedIndex) {
	ad.mu.Lock()
	ad.created = append(ad.created, ci)
	if len(ad.created) > 100 {
		ad.created = ad.created[1:]
	}
	ad.mu.Unlock()
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

// autoIndexLoop creates the advisor's suggestions every interval (DB_AUTO_INDEX).
func (ad *Admin) autoIndexLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sugs, err := ad.Advise(ctx)
		if err != nil {
			ad.log.WarnContext(ctx, "index advisor", slog.String("error", err.Error()))
			continue
		}
		for _, sg := range sugs {
			ci, err := ad.createIndex(ctx, IndexRequest{SuggestionID: sg.ID}, true)
			attrs := []slog.Attr{slog.String("index", ci.Name), slog.String("table", sg.Table), slog.String("query_id", sg.QueryID), slog.Float64("build_ms", ci.BuildMS)}
			if err != nil {
				ad.log.LogAttrs(ctx, slog.LevelWarn, "automatic index not created", append(attrs, slog.String("error", err.Error()))...)
				continue
			}
			ad.log.LogAttrs(ctx, slog.LevelInfo, "automatic index created", attrs...)
		}
	}
}
