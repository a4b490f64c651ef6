package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBooleanFlags(t *testing.T) {
	cases := []struct {
		args  []string
		env   []string
		cache bool
		auth  AuthMode
	}{
		{nil, nil, true, AuthAuto},
		{[]string{"--enable-cache=false"}, nil, false, AuthAuto},
		{[]string{"--enable-cache"}, []string{"ENABLE_CACHE", "off"}, true, AuthAuto},
		{nil, []string{"ENABLE_CACHE", "no"}, false, AuthAuto},
		{[]string{"--require-auth", "--admin-token", "0123456789abcdef0123"}, nil, true, AuthRequired},
		{[]string{"--require-auth=false"}, nil, true, AuthOpen},
		{[]string{"--require-auth=auto"}, []string{"SMARTCLOUDOPS_REQUIRE_AUTH", "false"}, true, AuthAuto},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env...), nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.EnableCache != tc.cache || c.RequireAuth != tc.auth {
				t.Errorf("cache %v auth %s; want %v %s", c.EnableCache, c.RequireAuth, tc.cache, tc.auth)
			}
		})
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token := write("token", "  0123456789abcdef0123\n")
	dbURL := write("db", "postgres://app:pw@db:5432/x\n")
	empty := write("empty", "\n")
	cases := []struct {
		name    string
		args    []string
		env     []string
		errName string
		check   func(*Config) bool
	}{
		{"token from file", nil, []string{"SMARTCLOUDOPS_ADMIN_TOKEN_FILE", token}, "",
			func(c *Config) bool {
				return c.AdminToken == "0123456789abcdef0123" && c.Source("SMARTCLOUDOPS_ADMIN_TOKEN") == SourceFile
			}},
		{"database url from file", nil, []string{"DATABASE_URL_FILE", dbURL}, "",
			func(c *Config) bool { return c.DatabaseURL == "postgres://app:pw@db:5432/x" }},
		{"flag wins over file", []string{"--admin-token", "abcdefabcdefabcdef99"}, []string{"SMARTCLOUDOPS_ADMIN_TOKEN_FILE", token}, "",
			func(c *Config) bool {
				return c.AdminToken == "abcdefabcdefabcdef99" && c.Source("SMARTCLOUDOPS_ADMIN_TOKEN") == SourceFlag
			}},
		{"both set", nil, []string{"SMARTCLOUDOPS_ADMIN_TOKEN_FILE", token, "SMARTCLOUDOPS_ADMIN_TOKEN", "x"}, "SMARTCLOUDOPS_ADMIN_TOKEN_FILE", nil},
		{"missing file", nil, []string{"REDIS_PASSWORD_FILE", filepath.Join(dir, "nope")}, "REDIS_PASSWORD_FILE", nil},
		{"empty file", nil, []string{"JWT_SECRET_FILE", empty}, "JWT_SECRET_FILE", nil},
		{"not a secret", nil, []string{"LOG_LEVEL_FILE", token}, "", func(c *Config) bool { return c.LogLevel == "info" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env...), nil)
			if tc.errName != "" {
				var ce *Error
				if !errors.As(err, &ce) || ce.Name != tc.errName {
					t.Fatalf("err = %v; want one naming %s", err, tc.errName)
				}
				if strings.Contains(err.Error(), "0123456789abcdef0123") {
					t.Errorf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config: %+v", c.Redacted())
			}
		})
	}
}

func TestWriteUsage(t *testing.T) {
	var all, mig bytes.Buffer
	WriteUsage(&all, nil)
	WriteUsage(&mig, MigrateFlags)
	for _, s := range settings() {
		if !strings.Contains(all.String(), "--"+s.flag+" ") || !strings.Contains(all.String(), "env "+s.env) {
			t.Errorf("serve usage lacks --%s or its env", s.flag)
		}
		if got := strings.Contains(mig.String(), "--"+s.flag+" "); got != MigrateFlags(s.flag) {
			t.Errorf("migrate usage shows --%s: %v", s.flag, got)
		}
	}
}
