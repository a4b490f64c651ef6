package promwrite

import "testing"

func TestParseSelectors(t *testing.T) {
	type probe struct {
		lbls []string
		want bool
	}
	tests := []struct {
		src    string
		n      int
		err    bool
		probes []probe
	}{
		{src: DefaultSelect, n: 2, probes: []probe{
			{[]string{"__name__", "node_load1"}, true},
			{[]string{"__name__", "node_load15"}, false}, // regexps are anchored
			{[]string{"__name__", "app", "smartcloudops", "true"}, true},
			{[]string{"__name__", "app", "smartcloudops", "false"}, false},
		}},
		{src: `up`, n: 1, probes: []probe{{[]string{"__name__", "up"}, true}, {[]string{"__name__", "upx"}, false}}},
		{src: `http_requests_total{code!~"5..", method='GET'}; node_load5`, n: 2, probes: []probe{
			{[]string{"__name__", "http_requests_total", "code", "200", "method", "GET"}, true},
			{[]string{"__name__", "http_requests_total", "code", "503", "method", "GET"}, false},
			{[]string{"__name__", "node_load5"}, true},
		}},
		{src: "{job=`node`,}", n: 1, probes: []probe{{[]string{"job", "node"}, true}}},
		{src: ``, n: 0},
		{src: `{a=""}`, err: true},    // matches every series
		{src: `{a!="x"}`, err: true},  // so does this
		{src: `a{b="c"`, err: true},   // unclosed
		{src: `a{b=c}`, err: true},    // unquoted
		{src: `a{b=~"("}`, err: true}, // bad regexp
		{src: `a{b="c"}x`, err: true}, // junk after
		{src: `{1a="x"}`, err: true},  // bad label name
		{src: `a{b="\q"}`, err: true}, // bad escape
		{src: `{}`, err: true},        // empty: found by FuzzParseSelectors (it panicked)
		{src: `{ }, up`, err: true},
	}
	for _, tc := range tests {
		sels, err := ParseSelectors(tc.src)
		if (err != nil) != tc.err {
			t.Errorf("ParseSelectors(%q): error %v, want error %v", tc.src, err, tc.err)
			continue
		}
		if tc.err {
			continue
		}
		if len(sels) != tc.n {
			t.Errorf("ParseSelectors(%q): %d selectors, want %d", tc.src, len(sels), tc.n)
		}
		r := &Receiver{opt: Options{Select: sels}}
		for _, p := range tc.probes {
			if got := r.selected(toLabels(labelsOfProm(p.lbls...))); got != p.want {
				t.Errorf("%q on %v: %v, want %v", tc.src, p.lbls, got, p.want)
			}
		}
	}
}
