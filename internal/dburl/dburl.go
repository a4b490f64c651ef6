package dburl

import (
	"errors"
	"net/url"
	"strings"
)

// Kind names the database a DATABASE_URL selects.
type Kind string

// The supported databases.
const (
	SQLite   Kind = "sqlite"
	Postgres Kind = "postgres"
)

// Parse splits a DATABASE_URL into the database kind and the address the
// driver takes: a file path for SQLite, the URL itself for PostgreSQL. The
// error says what is allowed, in words an operator can act on.
func Parse(v string) (Kind, string, error) {
	switch {
	case strings.HasPrefix(v, "sqlite://"):
		// sqlite:///./x.db → ./x.db ; sqlite:////var/x.db → /var/x.db (SQLAlchemy's form, which the seed used).
		rest := strings.TrimPrefix(v, "sqlite://")
		if !strings.HasPrefix(rest, "/") || len(rest) < 2 {
			return "", "", errors.New("must be sqlite:///relative/path.db or sqlite:////absolute/path.db")
		}
		path := rest[1:]
		if i := strings.IndexByte(path, '?'); i >= 0 {
			return "", "", errors.New("sqlite URLs take no query parameters")
		}
		return SQLite, path, nil
	case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return "", "", errors.New("must be postgres://user[:password]@host[:port]/database")
		}
		return Postgres, v, nil
	}
	return "", "", errors.New("must start with sqlite:/// or postgres://")
}
