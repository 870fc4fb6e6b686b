package gpu

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ModelSelector is the CEL selector Strata writes for a request that
// accepts only some GPU models. The scheduler plugins read exactly this
// form back (ModelsFromSelector) to model the restriction; any other CEL
// is left to the DRA allocator alone.
func ModelSelector(models []string) string {
	q := make([]string, len(models))
	for i, m := range models {
		q[i] = strconv.Quote(m)
	}
	return fmt.Sprintf("device.attributes[%q].%s in [%s]", DriverName, AttrModel, strings.Join(q, ", "))
}

var modelSelectorRE = regexp.MustCompile(`^device\.attributes\["` + regexp.QuoteMeta(DriverName) + `"\]\.` +
	regexp.QuoteMeta(string(AttrModel)) + ` in \[(.*)\]$`)

// ModelsFromSelector returns the models of a selector ModelSelector wrote,
// or nil for any other expression.
func ModelsFromSelector(expr string) []string {
	m := modelSelectorRE.FindStringSubmatch(strings.TrimSpace(expr))
	if m == nil {
		return nil
	}
	var out []string
	for _, s := range strings.Split(m[1], ",") {
		if u, err := strconv.Unquote(strings.TrimSpace(s)); err == nil {
			out = append(out, u)
		}
	}
	return out
}
