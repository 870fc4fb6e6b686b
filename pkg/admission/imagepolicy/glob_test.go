package imagepolicy

import (
	"strings"
	"testing"
)

func TestCompileGlob(t *testing.T) {
	tests := []struct {
		glob    string
		match   []string
		noMatch []string
		wantErr string
	}{
		{glob: "localhost:5000/strata/**", match: []string{"localhost:5000/strata/pause", "localhost:5000/strata/a/b"}, noMatch: []string{"localhost:5000/other", "localhost:5001/strata/pause"}},
		{glob: "registry.example.com/team/*", match: []string{"registry.example.com/team/app"}, noMatch: []string{"registry.example.com/team/sub/app", "registry.example.com/teamx/app"}},
		{glob: "index.docker.io/library/nginx", match: []string{"index.docker.io/library/nginx"}, noMatch: []string{"index.docker.io/library/nginx2"}},
		{glob: "r.io/app-?", match: []string{"r.io/app-1"}, noMatch: []string{"r.io/app-12", "r.io/app-/"}},
		{glob: "r.io/[a-c]pp", match: []string{"r.io/app", "r.io/cpp"}, noMatch: []string{"r.io/dpp"}},
		{glob: "r.io/[!a]pp", match: []string{"r.io/bpp"}, noMatch: []string{"r.io/app"}},
		{glob: `r.io/a\*`, match: []string{"r.io/a*"}, noMatch: []string{"r.io/ab"}},
		{glob: "r.io/a.b", match: []string{"r.io/a.b"}, noMatch: []string{"r.io/aXb"}},
		{glob: "localhost:5000/[abc", wantErr: "unterminated character class '[' at offset 15"},
		{glob: "localhost:5000/abc]", wantErr: "has no matching '['"},
		{glob: "r.io/app@sha256:abc", wantErr: "cannot contain '@'"},
		{glob: `r.io/app\`, wantErr: "trailing"},
		{glob: "r.io/[z-a]", wantErr: "invalid character class range"},
	}
	for _, tt := range tests {
		t.Run(tt.glob, func(t *testing.T) {
			re, err := compileGlob(tt.glob)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("compileGlob(%q) error = %v, want it to contain %q", tt.glob, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.match {
				if !re.MatchString(m) {
					t.Errorf("%q should match %q", tt.glob, m)
				}
			}
			for _, m := range tt.noMatch {
				if re.MatchString(m) {
					t.Errorf("%q should not match %q", tt.glob, m)
				}
			}
		})
	}
}
