package deploy_test

import (
	"debug/elf"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// TestFilesParse: every YAML and JSON file under deploy/ parses.
func TestFilesParse(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yml", ".yaml":
			n++
			if len(yamlDocs(t, path)) == 0 {
				t.Errorf("%s: no YAML document", path)
			}
		case ".json":
			n++
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b) {
				t.Errorf("%s: invalid JSON", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("parsed only %d files under deploy/", n)
	}
}

// TestKubernetes checks the manifests carry what the service needs: probes on
// real routes, a drain delay, a writable /data on a read-only root, a
// non-root user, and a kustomization that lists every manifest.
func TestKubernetes(t *testing.T) {
	routes := getRoutes(t)
	settings := knownSettings(t)
	dir := "kubernetes"
	kust := yamlDocs(t, filepath.Join(dir, "kustomization.yaml"))[0]
	var resources []string
	for _, r := range dig(kust, "resources").([]any) {
		resources = append(resources, r.(string))
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(resources, base) {
			t.Errorf("kustomization.yaml does not list %s", base)
		}
	}

	byKind := map[string]map[string]any{}
	for _, r := range resources {
		for _, doc := range yamlDocs(t, filepath.Join(dir, r)) {
			kind, api, name := str(doc, "kind"), str(doc, "apiVersion"), str(doc, "metadata", "name")
			if kind == "" || api == "" || name == "" {
				t.Errorf("%s: object without kind, apiVersion or metadata.name", r)
			}
			byKind[kind] = doc
		}
	}
	for _, kind := range []string{"Deployment", "Service", "ConfigMap", "Secret", "ServiceMonitor"} {
		if byKind[kind] == nil {
			t.Fatalf("no %s among %v", kind, resources)
		}
	}

	dep := byKind["Deployment"]
	pod := dig(dep, "spec", "template", "spec")
	if str(dep, "spec", "selector", "matchLabels", "app.kubernetes.io/name") != str(dep, "spec", "template", "metadata", "labels", "app.kubernetes.io/name") {
		t.Error("Deployment selector does not match its pod labels")
	}
	if dig(pod, "securityContext", "runAsNonRoot") != true || dig(pod, "securityContext", "runAsUser") != 65532 {
		t.Error("pod must run as non-root user 65532")
	}
	c := dig(pod, "containers", 0)
	for _, tc := range []struct{ probe, want string }{
		{"livenessProbe", "/livez"}, {"readinessProbe", "/readyz"}, {"startupProbe", "/livez"},
	} {
		path := str(c, tc.probe, "httpGet", "path")
		if path != tc.want {
			t.Errorf("%s path %q, want %q", tc.probe, path, tc.want)
		}
		if !routes[path] {
			t.Errorf("%s path %q is not a GET route of internal/httpapi", tc.probe, path)
		}
		if str(c, tc.probe, "httpGet", "port") != str(c, "ports", 0, "name") {
			t.Errorf("%s port is not the container's named port", tc.probe)
		}
	}
	if dig(c, "lifecycle", "preStop") == nil {
		t.Error("no preStop delay")
	}
	for _, k := range []string{"cpu", "memory"} {
		if dig(c, "resources", "requests", k) == nil {
			t.Errorf("no resources.requests.%s", k)
		}
	}
	if dig(c, "securityContext", "readOnlyRootFilesystem") != true || dig(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Error("container needs readOnlyRootFilesystem and no privilege escalation")
	}
	mounted := map[string]string{}
	for _, m := range dig(c, "volumeMounts").([]any) {
		mounted[str(m, "mountPath")] = str(m, "name")
	}
	dataVol := mounted["/data"]
	if dataVol == "" {
		t.Fatal("/data is not mounted (read-only root: SQLite and logs need it)")
	}
	found := false
	for _, v := range dig(pod, "volumes").([]any) {
		if str(v, "name") == dataVol && (dig(v, "emptyDir") != nil || dig(v, "persistentVolumeClaim") != nil) {
			found = true
		}
	}
	if !found {
		t.Errorf("volume %q for /data is neither an emptyDir nor a PVC", dataVol)
	}
	for _, ref := range dig(c, "envFrom").([]any) {
		for kind, key := range map[string]string{"ConfigMap": "configMapRef", "Secret": "secretRef"} {
			if n := str(ref, key, "name"); n != "" && n != str(byKind[kind], "metadata", "name") {
				t.Errorf("envFrom %s %q not among the manifests", key, n)
			}
		}
	}

	cm := byKind["ConfigMap"]
	if got := str(cm, "data", "DATABASE_URL"); !strings.HasPrefix(got, "sqlite:////data/") {
		t.Errorf("ConfigMap DATABASE_URL %q is not on /data", got)
	}
	for _, m := range []map[string]any{cm["data"].(map[string]any), dig(byKind["Secret"], "stringData").(map[string]any)} {
		for k := range m {
			if !settings[k] {
				t.Errorf("setting %s is not in README's configuration table", k)
			}
		}
	}

	svc := byKind["Service"]
	if str(svc, "spec", "ports", 0, "targetPort") != str(c, "ports", 0, "name") {
		t.Error("Service targetPort is not the container's port name")
	}
	sm := byKind["ServiceMonitor"]
	if str(sm, "apiVersion") != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %q", str(sm, "apiVersion"))
	}
	if p := str(sm, "spec", "endpoints", 0, "path"); !routes[p] {
		t.Errorf("ServiceMonitor path %q is not a GET route", p)
	}
	if str(sm, "spec", "endpoints", 0, "port") != str(svc, "spec", "ports", 0, "name") {
		t.Error("ServiceMonitor port is not the Service's port name")
	}
}

// TestKustomizeBuild renders the kustomization offline when kubectl is here.
func TestKustomizeBuild(t *testing.T) {
	kubectl := needTool(t, "kubectl", "https://kubernetes.io/docs/tasks/tools/")
	out, err := exec.Command(kubectl, "kustomize", "kubernetes").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "kind: ServiceMonitor") {
		t.Errorf("rendered output lacks the ServiceMonitor:\n%s", out)
	}
}

// TestCompose checks every file the compose stack mounts or builds from exists
// and the settings it passes the service are real ones.
func TestCompose(t *testing.T) {
	dir := "compose"
	doc := yamlDocs(t, filepath.Join(dir, "docker-compose.yml"))[0]
	exists := func(rel string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dir, rel)); err != nil {
			t.Errorf("compose references %s: %v", rel, err)
		}
	}
	services := dig(doc, "services").(map[string]any)
	for _, want := range []string{"smartcloudops", "postgres", "redis", "prometheus", "node-exporter", "alertmanager", "grafana"} {
		if services[want] == nil {
			t.Errorf("no %s service", want)
		}
	}
	app := services["smartcloudops"]
	exists(str(app, "build", "context"))
	exists(filepath.Join(str(app, "build", "context"), str(app, "build", "dockerfile")))
	settings := knownSettings(t)
	for k := range dig(app, "environment").(map[string]any) {
		if !settings[k] {
			t.Errorf("compose sets %s, not in README's configuration table", k)
		}
	}
	mounts := 0
	for name, s := range services {
		vols, _ := dig(s, "volumes").([]any)
		for _, v := range vols {
			src, _, _ := strings.Cut(v.(string), ":")
			if strings.HasPrefix(src, ".") {
				mounts++
				exists(src)
			} else if !strings.HasPrefix(src, "/") {
				if _, ok := dig(doc, "volumes").(map[string]any)[src]; !ok {
					t.Errorf("service %s mounts undeclared volume %q", name, src)
				}
			}
		}
	}
	if mounts < 6 {
		t.Errorf("only %d file mounts checked", mounts)
	}
	// The Grafana dashboard provider must read where compose mounts the JSON.
	prov := yamlDocs(t, filepath.Join("grafana", "provisioning", "dashboards", "smartcloudops.yml"))[0]
	p := str(prov, "providers", 0, "options", "path")
	found := false
	for _, v := range dig(services["grafana"], "volumes").([]any) {
		if _, dst, _ := strings.Cut(v.(string), ":"); strings.HasPrefix(dst, p+"/") {
			found = true
		}
	}
	if !found {
		t.Errorf("no compose mount under the dashboard provider's path %s", p)
	}
}

// TestPromtool runs promtool on the compose Prometheus config (syntax only:
// its token and rule files exist inside the container) and amtool on the
// Alertmanager config.
func TestPromtool(t *testing.T) {
	promtool := needTool(t, "promtool", "apt-get install -y prometheus")
	if out, err := exec.Command(promtool, "check", "config", "--syntax-only", "compose/prometheus.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Log("amtool not installed (apt-get install -y prometheus-alertmanager); alertmanager.yml only parsed")
		return
	}
	if out, err := exec.Command(amtool, "check-config", "compose/alertmanager.yml").CombinedOutput(); err != nil {
		t.Errorf("amtool check-config: %v\n%s", err, out)
	}
}

// TestSystemdVerify runs systemd-analyze verify on the unit, with ExecStart
// pointed at a freshly built binary (verify wants it to exist), and checks the
// env file only names real settings.
func TestSystemdVerify(t *testing.T) {
	settings := knownSettings(t)
	env, err := os.ReadFile("systemd/smartcloudops.env")
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("systemd/smartcloudops.service")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "Environment="); ok {
			keys = append(keys, envKeys(v)...)
		}
	}
	// Commented examples count too: they are what a user uncomments.
	keys = append(keys, envKeys(strings.ReplaceAll(string(env), "# ", ""))...)
	for _, k := range keys {
		if strings.ToUpper(k) == k && !strings.Contains(k, " ") && !settings[k] {
			t.Errorf("systemd sets %s, not in README's configuration table", k)
		}
	}

	analyze := needTool(t, "systemd-analyze", "apt-get install -y systemd")
	bin := staticBinary(t)
	dir := t.TempDir()
	patched := strings.ReplaceAll(string(unit), "/usr/local/bin/smartcloudops", bin)
	path := filepath.Join(dir, "smartcloudops.service")
	if err := os.WriteFile(path, []byte(patched), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	if len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify warned:\n%s", out)
	}
}

// TestStaticBinary builds as the Dockerfile does and checks the ELF has no
// interpreter (no dynamic loader), so it runs on distroless/static.
func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(staticBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("binary has a PT_INTERP segment: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("binary imports %v", libs)
	}
}

// TestDockerfile checks the Dockerfile keeps its promises (static, non-root,
// /data volume, port), and builds it when a Docker daemon answers.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", "./cmd/smartcloudops", "USER 65532:65532", `VOLUME ["/data"]`,
		"EXPOSE 5000", "DATABASE_URL=sqlite:////data/smartcloudops.db", "LOG_DIR=/data/logs",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot, ".dockerignore")); err != nil {
		t.Errorf(".dockerignore: %v", err)
	}
	docker := needTool(t, "docker", "https://docs.docker.com/engine/install/")
	if out, err := exec.Command(docker, "info").CombinedOutput(); err != nil {
		t.Skipf("no Docker daemon reachable (%v); the build command is checked by TestStaticBinary instead\n%s", err, out)
	}
	if testing.Short() {
		t.Skip("docker build skipped in -short")
	}
	cmd := exec.Command(docker, "build", "-t", "smartcloudops:deploy-test", ".")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
}
