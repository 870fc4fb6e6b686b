package imagepolicy

import (
	"fmt"
	"regexp"
	"strings"
)

// compileGlob turns an image glob into an anchored regexp. `*` and `?`
// stay within one path segment so that `registry/team/*` does not reach
// into `registry/team/sub/app`; `**` crosses segments. Errors name the
// offset of the problem, because they are shown to whoever wrote the
// policy.
func compileGlob(glob string) (*regexp.Regexp, error) {
	if strings.ContainsAny(glob, "@ \t\n") {
		return nil, fmt.Errorf("glob %q: patterns match repositories, so they cannot contain '@', a digest or spaces", glob)
	}
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			if i+1 < len(glob) && glob[i+1] == '*' {
				re.WriteString(".*")
				i++
			} else {
				re.WriteString("[^/]*")
			}
		case '?':
			re.WriteString("[^/]")
		case '[':
			end := classEnd(glob, i)
			if end < 0 {
				return nil, fmt.Errorf("glob %q: unterminated character class '[' at offset %d (close it with ']')", glob, i)
			}
			class := glob[i+1 : end]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			if class == "" || class == "^" {
				return nil, fmt.Errorf("glob %q: empty character class at offset %d", glob, i)
			}
			re.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i = end
		case ']':
			return nil, fmt.Errorf("glob %q: ']' at offset %d has no matching '['", glob, i)
		case '\\':
			if i+1 == len(glob) {
				return nil, fmt.Errorf("glob %q: trailing '\\' escapes nothing", glob)
			}
			i++
			re.WriteString(regexp.QuoteMeta(glob[i : i+1]))
		default:
			re.WriteString(regexp.QuoteMeta(glob[i : i+1]))
		}
	}
	re.WriteString("$")
	compiled, err := regexp.Compile(re.String())
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", glob, err)
	}
	return compiled, nil
}

// classEnd returns the index of the ']' closing the class that opens at
// glob[start], or -1. A ']' right after '[' or '[!' is a literal, as in
// path.Match.
func classEnd(glob string, start int) int {
	i := start + 1
	if i < len(glob) && glob[i] == '!' {
		i++
	}
	if i < len(glob) && glob[i] == ']' {
		i++
	}
	for ; i < len(glob); i++ {
		if glob[i] == ']' {
			return i
		}
	}
	return -1
}
