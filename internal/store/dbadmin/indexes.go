package dbadmin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
	"github.com/smartcloudops/smartcloudops/internal/store"
)

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
		// Another replica leads: its advisor decides, on its statistics.
		if !ad.leads() {
			continue
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
